import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { startCluster, stopCluster } from './postgres-cluster.js'

/**
 * `pnpm start`: the whole system on one machine without Docker. PostgreSQL (DATABASE_URL, or an
 * embedded server kept in `.data/postgres`), then the migration, then the api and the workers, each
 * run as `node <dist entry>` exactly as their images run it, with their output prefixed like
 * `docker compose up`.
 *
 * Children get a process group of their own (`detached`), so the terminal's Ctrl-C reaches only this
 * launcher: each child then gets exactly one SIGTERM, and PostgreSQL is stopped after they have all
 * drained. A second Ctrl-C kills them.
 */

const root = fileURLToPath(new URL('../../../', import.meta.url))
const entries = {
  migrate: 'packages/db/dist/migrate-main.js',
  api: 'services/api/dist/main.js',
  worker: 'services/worker/dist/main.js',
}
// Prefix colours as docker compose cycles them: cyan, yellow, green, magenta, blue, then bright ones.
const colours = [36, 33, 32, 35, 34, 96, 93, 92, 95, 94]

const env = process.env
const tty = process.stdout.isTTY === true && !env.NO_COLOR
const config = {
  databaseUrl: env.DATABASE_URL || undefined,
  embeddedPort: integer('EMBEDDED_POSTGRES_PORT', 54329),
  port: integer('PORT', 3000),
  // 0: PostgreSQL and the api only, for a worker of your own (startWorker, runWorker) against them.
  workers: integer('WORKERS', 3, { min: 0 }),
  /** Each worker serves its metrics on its own port: this one plus its index (worker-1 on this one). */
  metricsPort: env.METRICS_PORT ? integer('METRICS_PORT', 0) : undefined,
  logFormat: env.LOG_FORMAT || (tty ? 'pretty' : undefined),
}
const workerNames = Array.from({ length: config.workers }, (_, i) => `worker-${i + 1}`)
const names = ['migrate', 'api', ...workerNames]
const width = Math.max(...names.map((name) => name.length))

const running = new Set<ChildProcess>()
let stopping = false
/**
 * A terminal's Ctrl-C reaches this process twice under `pnpm start`: from the terminal, and again
 * relayed by pnpm. A second signal this soon is that same Ctrl-C, not a request to force.
 */
const SAME_CTRL_C_MS = 500
let stoppingSince = 0
let forced = false
let failed = false

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal)
// A closed terminal must not kill the launcher before it has stopped its children.
process.stdout.on('error', () => {})

try {
  process.exitCode = await main()
} catch (err) {
  console.error(`start: ${err instanceof Error ? err.message : String(err)}`)
  process.exitCode = 1
}

async function main(): Promise<number> {
  const missing = Object.values(entries).filter((entry) => !existsSync(path.join(root, entry)))
  if (missing.length > 0) throw new Error(`not built: ${missing.join(', ')} (run pnpm build)`)

  let dataDir: string | undefined
  let databaseUrl = config.databaseUrl
  if (!databaseUrl) {
    dataDir = path.join(root, '.data', 'postgres')
    say(`starting PostgreSQL in .data/postgres on port ${config.embeddedPort}`)
    databaseUrl = (await startCluster({ dataDir, port: config.embeddedPort })).url()
  }
  try {
    return await runAll(databaseUrl)
  } finally {
    if (dataDir) {
      say('stopping PostgreSQL')
      await stopCluster(dataDir)
    }
  }
}

async function runAll(databaseUrl: string): Promise<number> {
  const childEnv: NodeJS.ProcessEnv = { ...env, DATABASE_URL: databaseUrl }
  if (config.logFormat) childEnv.LOG_FORMAT = config.logFormat
  if (stopping) return exitCode()

  const migrate = await run('migrate', entries.migrate, childEnv)
  if (stopping || migrate !== 0) return exitCode()

  const services = [
    run('api', entries.api, { ...childEnv, PORT: String(config.port) }),
    // A name, not an id: each process still gets an id of its own (name-pid-random), while the
    // name keeps its metrics series and fleet row readable across restarts.
    ...workerNames.map((name, i) => run(name, entries.worker, { ...childEnv, WORKER_NAME: name, ...metricsEnv(i) })),
  ]
  for (const exited of services) {
    void exited.then(() => {
      if (stopping) return
      failed = true
      beginStop('stopping the others')
    })
  }
  void announceWhenReady(databaseUrl)
  await Promise.all(services)
  return exitCode()
}

function metricsEnv(index: number): NodeJS.ProcessEnv {
  return config.metricsPort === undefined ? {} : { METRICS_PORT: String(config.metricsPort + index) }
}

/** Runs `node <entry>` in a process group of its own; resolves with its exit code once it has exited. */
function run(name: string, entry: string, childEnv: NodeJS.ProcessEnv): Promise<number | null> {
  // Source maps on, as in the images: a processor's stack trace names its source, not the bundle.
  const child = spawn(process.execPath, ['--enable-source-maps', entry], {
    cwd: root,
    env: childEnv,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.add(child)
  const label = `${name.padEnd(width)} |`
  const prefix = tty ? `\x1b[${colours[names.indexOf(name) % colours.length]}m${label}\x1b[0m ` : `${label} `
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) =>
      process.stdout.write(`${prefix}${line}\n`),
    )
  }
  return new Promise((resolve) => {
    // 'close' rather than 'exit': it comes after the last line of output has been read.
    child.on('close', (code, signal) => {
      running.delete(child)
      if (code !== 0 && !(stopping && signal === 'SIGTERM')) failed = true
      say(signal ? `${name} killed by ${signal}` : `${name} exited with code ${code}`)
      resolve(code)
    })
    child.on('error', (err) => {
      running.delete(child)
      failed = true
      say(`${name} did not start: ${err.message}`)
      resolve(null)
    })
  })
}

function onSignal(): void {
  if (!stopping) {
    stoppingSince = performance.now()
    beginStop('stopping (Ctrl-C again to force)')
    return
  }
  if (forced || performance.now() - stoppingSince < SAME_CTRL_C_MS) return
  forced = true
  say('forcing stop')
  for (const child of running) {
    try {
      process.kill(-(child.pid ?? 0), 'SIGKILL') // the whole group: nothing the child started survives
    } catch {
      child.kill('SIGKILL')
    }
  }
}

function beginStop(reason: string): void {
  if (stopping) return
  stopping = true
  say(reason)
  for (const child of running) child.kill('SIGTERM')
}

function exitCode(): number {
  if (forced) return 130
  return failed ? 1 : 0
}

/** The hint, once the api answers its readiness probe (it may still be waiting for PostgreSQL). */
async function announceWhenReady(databaseUrl: string): Promise<void> {
  const url = `http://localhost:${config.port}/ready`
  while (!stopping) {
    const ready = await fetch(url, { signal: AbortSignal.timeout(1000) }).then(
      (res) => res.ok,
      () => false,
    )
    if (ready && !stopping) {
      const base = `http://localhost:${config.port}`
      const workers =
        config.workers === 0
          ? 'no workers (WORKERS=0: start your own against the database below)'
          : `${config.workers} worker${config.workers === 1 ? '' : 's'}`
      say(`api on ${base}, ${workers}, database ${connectionHint(databaseUrl)}`)
      say(`dashboard on ${base}/, the API's documentation on ${base}/docs`)
      if (config.metricsPort !== undefined) {
        const last = config.metricsPort + config.workers - 1
        say(
          `worker metrics on http://localhost:${config.metricsPort}/metrics${last > config.metricsPort ? ` to :${last}` : ''} (worker-1 first)`,
        )
      }
      return
    }
    await sleep(250)
  }
}

/**
 * The database to connect to, usable as printed: the embedded server's password is the harness's
 * fixed development one, so it is shown; a DATABASE_URL's own password never is.
 */
function connectionHint(databaseUrl: string): string {
  const schema = env.DATABASE_SCHEMA || 'postgres_queue'
  if (!config.databaseUrl) return `${databaseUrl.replace('127.0.0.1', 'localhost')} (tables in schema ${schema})`
  const shown = new URL(databaseUrl)
  if (shown.password) shown.password = '***'
  return `${shown} (the password as in DATABASE_URL; tables in schema ${schema})`
}

function say(message: string): void {
  process.stdout.write(tty ? `\x1b[1m${message}\x1b[0m\n` : `${message}\n`)
}

function integer(name: string, fallback: number, { min = 1 } = {}): number {
  const raw = env[name]
  if (!raw) return fallback
  const value = Number(raw)
  if (Number.isInteger(value) && value >= min) return value
  console.error(`start: ${name}=${raw} must be an integer of at least ${min}`)
  process.exit(2)
}
