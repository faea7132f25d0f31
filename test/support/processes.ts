import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url))

/** The built entry points: the very files the Dockerfiles run (`pnpm test` builds first). */
export const entryPoints = {
  api: `${repoRoot}services/api/dist/main.js`,
  worker: `${repoRoot}services/worker/dist/main.js`,
} as const

export interface ServiceProcess {
  name: string
  child: ChildProcess
  /** Date.now() at spawn, to measure start-up against the time of a log line. */
  spawnedAt: number
  /** Every JSON log line the process printed so far. */
  lines: Record<string, unknown>[]
  /** Non-JSON output, kept for failure messages. */
  otherOutput: string[]
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>
  /** Resolves with the first line matching `predicate`, printed before or after the call. */
  waitForLine(
    predicate: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>
}

/** Starts `node <entry>` (or a test fixture) with `env` added to this process's environment, in `cwd`. */
export function startService(
  name: string,
  args: string[],
  env: Record<string, string>,
  { cwd }: { cwd?: string } = {},
): ServiceProcess {
  // tap's NODE_OPTIONS loads its process-info hook into every child: 0.8 s -> 2.9 s of CPU to start
  // a worker (measured), which the chaos tests, restarting a worker every second, cannot afford.
  const { NODE_OPTIONS: _tapHooks, ...inherited } = process.env
  const spawnedAt = Date.now()
  const child = spawn(process.execPath, args, {
    cwd,
    env: { ...inherited, LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: Record<string, unknown>[] = []
  const otherOutput: string[] = []
  const waiters = new Set<(line: Record<string, unknown>) => void>()
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (text) => {
      let line: Record<string, unknown>
      try {
        line = JSON.parse(text) as Record<string, unknown>
      } catch {
        otherOutput.push(text)
        return
      }
      lines.push(line)
      for (const waiter of waiters) waiter(line)
    })
  }
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string)
  return {
    name,
    child,
    spawnedAt,
    lines,
    otherOutput,
    exited,
    waitForLine(predicate, timeoutMs = 30_000) {
      const seen = lines.find(predicate)
      if (seen) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`${name}: no matching log line within ${timeoutMs} ms; output: ${otherOutput.join('\n')}`))
        }, timeoutMs)
        const check = (line: Record<string, unknown>) => {
          if (!predicate(line)) return
          clearTimeout(timer)
          waiters.delete(check)
          resolve(line)
        }
        waiters.add(check)
      })
    },
  }
}

export function isRunning(service: ServiceProcess): boolean {
  return service.child.exitCode === null && service.child.signalCode === null
}

/** The JSON log lines with this message. */
export function linesWith(service: ServiceProcess, msg: string): Record<string, unknown>[] {
  return service.lines.filter((line) => line.msg === msg)
}

/** Sends SIGTERM and waits for the exit; SIGKILL after `timeoutMs` so a test never hangs. */
export async function stopService(service: ServiceProcess, timeoutMs = 20_000): Promise<number | string> {
  if (!isRunning(service)) return service.exited
  // A process paused with SIGSTOP would hold SIGTERM until continued.
  service.child.kill('SIGCONT')
  service.child.kill('SIGTERM')
  const timer = setTimeout(() => service.child.kill('SIGKILL'), timeoutMs)
  try {
    return await service.exited
  } finally {
    clearTimeout(timer)
  }
}
