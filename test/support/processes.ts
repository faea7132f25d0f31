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
  /** Every JSON log line the process printed so far. */
  lines: Record<string, unknown>[]
  /** Non-JSON output, kept for failure messages. */
  otherOutput: string[]
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>
  /** Resolves with the first line matching `predicate`, printed before or after the call. */
  waitForLine(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
}

/** Starts `node <entry>` (or a test fixture) with `env` added to this process's environment. */
export function startService(
  name: string,
  args: string[],
  env: Record<string, string>,
): ServiceProcess {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, LOG_FORMAT: 'json', ...env },
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

/** Sends SIGTERM and waits for the exit; SIGKILL after `timeoutMs` so a test never hangs. */
export async function stopService(service: ServiceProcess, timeoutMs = 20_000): Promise<number | string> {
  if (service.child.exitCode !== null || service.child.signalCode !== null) return service.exited
  service.child.kill('SIGTERM')
  const timer = setTimeout(() => service.child.kill('SIGKILL'), timeoutMs)
  try {
    return await service.exited
  } finally {
    clearTimeout(timer)
  }
}
