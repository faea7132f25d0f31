import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { repoRoot } from './processes.js'

// Driving a real Docker engine and Compose project from a test: the CLI as a user would run it,
// its output parsed, every process it starts ended in teardown.

export interface DockerTools {
  /** The docker CLI. Debian's /usr/bin/docker where present: BuildKit is built in. */
  docker: string
  /** `docker-compose` (v1, Debian's) or `docker compose` (v2), as argv. */
  compose: string[]
  /** What `compose --version` says, for the test's output. */
  composeVersion: string
  env: NodeJS.ProcessEnv
}

export interface RunResult {
  stdout: string
  stderr: string
}

/** Runs a command to its end; rejects with its output when it fails or outlives `timeoutMs`. */
export function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; onLine?: (line: string) => void } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: repoRoot, env: options.env ?? process.env, stdio: 'pipe' })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    if (options.onLine)
      for (const stream of [child.stdout, child.stderr]) createInterface({ input: stream }).on('line', options.onLine)
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000)
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolve({ stdout, stderr })
      else reject(new Error(`${command} ${args.join(' ')}: exit ${code ?? signal}\n${stderr || stdout}`))
    })
    child.stdin.end(options.input ?? '')
  })
}

/**
 * The Docker CLI and a Compose that reach a running engine, or why there are none. BuildKit is on
 * for both Composes (the Dockerfiles use it), and Debian's docker first on PATH: a docker 23+ CLI
 * without the buildx plugin refuses BuildKit builds.
 */
export async function findDocker(): Promise<DockerTools | { missing: string }> {
  const docker = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker'
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `/usr/bin:${process.env.PATH ?? ''}`,
    DOCKER_BUILDKIT: '1',
    COMPOSE_DOCKER_CLI_BUILD: '1',
  }
  delete env.NODE_OPTIONS // tap's hooks have no business in the CLI's node, if any
  try {
    await run(docker, ['version'], { env, timeoutMs: 20_000 })
  } catch (err) {
    return {
      missing: `no Docker engine answers (${lastLine(err)}); ../shared/docker/build-standins.sh, run as root, installs and starts one`,
    }
  }
  for (const compose of [['docker-compose'], [docker, 'compose']]) {
    try {
      const { stdout } = await run(compose[0]!, [...compose.slice(1), 'version', '--short'], { env, timeoutMs: 20_000 })
      return { docker, compose, composeVersion: `${compose.join(' ')} ${stdout.trim()}`, env }
    } catch {
      // try the next one
    }
  }
  return { missing: 'a Docker engine answers, but neither docker-compose nor the docker compose plugin is installed' }
}

/** What the CLI said last: the reason, after whatever it printed before failing. */
function lastLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).trim().split('\n').at(-1)!.trim()
}

interface DockerEvent {
  Action: string
  time: number
  Actor: { ID: string; Attributes: Record<string, string> }
}

/** What `docker inspect` says about a container, the parts the tests read. */
export interface ContainerState {
  Id: string
  Name: string
  RestartCount: number
  State: {
    Status: string
    Running: boolean
    ExitCode: number
    StartedAt: string
    FinishedAt: string
    Health?: { Status: string }
  }
  Config: { Hostname: string; Labels: Record<string, string> }
  /** Published ports: `3000/tcp` -> the host addresses and ports it is bound to. */
  NetworkSettings: { Ports: Record<string, { HostIp: string; HostPort: string }[] | null> }
}

export interface ComposeProject {
  name: string
  /** Runs `compose <args>` in the repository root, on the unmodified docker-compose.yml and the overrides given. */
  compose(args: string[], options?: { timeoutMs?: number; onLine?: (line: string) => void }): Promise<RunResult>
  /** Ids of the service's containers, running or not. */
  containerIds(service: string): Promise<string[]>
  inspect(ids: string[]): Promise<ContainerState[]>
  /** One statement through psql in the postgres container, as the superuser; tab-separated rows. */
  psql(statement: string): Promise<string[][]>
  /** A psql session of its own, fed statements one at a time: to hold a lock while other things happen. */
  openPsqlSession(): PsqlSession
  /** Every container event of the project since it was created. */
  events: DockerEvent[]
  /**
   * A container's JSON log lines so far, following its log from the first call on (lines that are
   * not JSON come as `{ nonJson }`). Follow a container as soon as it exists: once removed (a
   * scale-down), what was followed is all there is.
   */
  logLines(id: string): Record<string, unknown>[]
  /** A container's whole log, every run of it, if it still exists; else what was followed. */
  fullLog(id: string): Promise<Record<string, unknown>[]>
  /** Ends the event and log followers and psql sessions. */
  close(): void
}

interface PsqlSession {
  send(statements: string): void
  close(): Promise<void>
}

/** A Compose project of its own name; `close` ends what it started (the caller runs `down`). */
export function composeProject(
  tools: DockerTools,
  name: string,
  settings: Record<string, string>,
  { overrides = [] }: { overrides?: readonly string[] } = {},
): ComposeProject {
  const env = { ...tools.env, COMPOSE_PROJECT_NAME: name, ...settings }
  const children = new Set<ChildProcess>()
  const follow = (args: string[], onLine: (line: string) => void) => {
    const child = spawn(tools.docker, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    child.on('close', () => children.delete(child))
    for (const stream of [child.stdout, child.stderr]) createInterface({ input: stream }).on('line', onLine)
    return child
  }

  const events: DockerEvent[] = []
  follow(
    [
      'events',
      '--since',
      String(Math.floor(Date.now() / 1000) - 1),
      '--filter',
      `label=com.docker.compose.project=${name}`,
      '--filter',
      'type=container',
      '--format',
      '{{json .}}',
    ],
    (line) => {
      try {
        events.push(JSON.parse(line) as DockerEvent)
      } catch {
        // not an event
      }
    },
  )

  const logs = new Map<string, Record<string, unknown>[]>()
  const parseLine = (text: string): Record<string, unknown> => {
    try {
      return JSON.parse(text) as Record<string, unknown>
    } catch {
      return { nonJson: text }
    }
  }
  const files = ['docker-compose.yml', ...overrides].flatMap((file) => ['-f', file])
  const compose = (
    args: string[],
    { timeoutMs = 300_000, onLine }: { timeoutMs?: number; onLine?: (line: string) => void } = {},
  ) => run(tools.compose[0]!, [...tools.compose.slice(1), ...files, ...args], { env, timeoutMs, onLine })
  const containerIds = async (service: string) =>
    (await compose(['ps', '-q', service])).stdout.split('\n').filter(Boolean)
  const postgresId = async () => {
    const [id] = await containerIds('postgres')
    if (!id) throw new Error('no postgres container')
    return id
  }
  // The queue's tables live in its own schema (DATABASE_SCHEMA, default postgres_queue).
  const psqlArgs = (id: string) => [
    'exec',
    '-i',
    '-e',
    'PGOPTIONS=-c search_path=postgres_queue',
    id,
    'psql',
    '-U',
    'postgres',
    '-d',
    'postgres_queue',
    '-v',
    'ON_ERROR_STOP=1',
    '-AtqX',
    '-F',
    '\t',
  ]

  return {
    name,
    compose,
    containerIds,
    events,
    async inspect(ids) {
      if (ids.length === 0) return []
      return JSON.parse((await run(tools.docker, ['inspect', ...ids], { env })).stdout) as ContainerState[]
    },
    async psql(statement) {
      const { stdout } = await run(tools.docker, psqlArgs(await postgresId()), {
        env,
        input: statement,
        timeoutMs: 30_000,
      })
      return stdout
        .split('\n')
        .filter(Boolean)
        .map((row) => row.split('\t'))
    },
    openPsqlSession() {
      let child: ChildProcess | undefined
      const ready = postgresId().then((id) => {
        child = spawn(tools.docker, psqlArgs(id), { cwd: repoRoot, env, stdio: ['pipe', 'ignore', 'inherit'] })
        children.add(child)
        return child
      })
      return {
        send(statements) {
          void ready.then((c) => c.stdin!.write(`${statements}\n`))
        },
        async close() {
          const c = await ready
          const closed = new Promise((resolve) => c.once('close', resolve))
          c.stdin!.end()
          await closed
        },
      }
    },
    logLines(id) {
      let lines = logs.get(id)
      if (!lines) {
        const kept: Record<string, unknown>[] = []
        lines = kept
        logs.set(id, kept)
        follow(['logs', '--follow', id], (text) => kept.push(parseLine(text)))
      }
      return lines
    },
    async fullLog(id) {
      try {
        const { stdout, stderr } = await run(tools.docker, ['logs', id], { env })
        return `${stdout}${stderr}`.split('\n').filter(Boolean).map(parseLine)
      } catch {
        return logs.get(id) ?? []
      }
    },
    close() {
      for (const child of children) child.kill('SIGTERM')
    },
  }
}
