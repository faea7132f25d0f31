import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { ChildMessage, ParentMessage } from './workers/protocol.js'

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))

/** The product's built entry points, the very files the Dockerfiles run, and the bench's own scripts. */
export const scripts = {
  api: `${repoRoot}services/api/dist/main.js`,
  worker: `${repoRoot}services/worker/dist/main.js`,
  latencyWorker: fileURLToPath(new URL('./workers/latency-worker.js', import.meta.url)),
  pgBossWorker: fileURLToPath(new URL('./peers/pg-boss-worker.js', import.meta.url)),
  graphileWorker: fileURLToPath(new URL('./peers/graphile-worker.js', import.meta.url)),
} as const

/** Lines kept per child for error messages: enough for a stack trace. */
const KEPT_LINES = 40

export interface Child {
  name: string
  pid: number
  /** The last lines of stdout and stderr, for failure messages. */
  output: string[]
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>
  /** The exit code (or signal name), once it has exited. */
  exitStatus(): number | string | undefined
  /** Called for each IPC message from a bench script (never for the product's entry points). */
  onMessage(listener: (message: ChildMessage) => void): void
  send(message: ParentMessage): void
  /** Waits for the first IPC message of `type`; fails if the child exits first or `timeoutMs` passes. */
  waitFor<T extends ChildMessage['type']>(type: T, timeoutMs?: number): Promise<Extract<ChildMessage, { type: T }>>
  /** SIGTERM, then SIGKILL if it is still running after `graceMs`. */
  stop(graceMs?: number): Promise<void>
}

/**
 * Starts `node <script>` with `env` over this process's environment. The bench's own scripts get an
 * IPC channel; the product's entry points (`ipc: false`) run as production runs them, without one.
 */
export function startNode(name: string, script: string, env: Record<string, string>, { ipc = true } = {}): Child {
  const child: ChildProcess = spawn(process.execPath, [script], {
    env: { ...process.env, LOG_FORMAT: 'json', ...env },
    stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => {
      output.push(line)
      if (output.length > KEPT_LINES) output.shift()
    })
  }
  let status: number | string | undefined
  const exited = once(child, 'exit').then(([code, signal]) => (status = (code ?? signal) as number | string))
  const listeners: ((message: ChildMessage) => void)[] = []
  child.on('message', (message: ChildMessage) => {
    for (const listener of listeners) listener(message)
  })

  return {
    name,
    pid: child.pid!,
    output,
    exited,
    exitStatus: () => status,
    onMessage: (listener) => listeners.push(listener),
    send(message) {
      if (child.connected) child.send(message)
    },
    waitFor(type, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${name}: no '${type}' within ${timeoutMs} ms\n${output.join('\n')}`)),
          timeoutMs,
        )
        listeners.push((message) => {
          if (message.type !== type) return
          clearTimeout(timer)
          resolve(message as Extract<ChildMessage, { type: typeof type }>)
        })
        void exited.then((code) => {
          clearTimeout(timer)
          reject(new Error(`${name} exited (${code}) before '${type}'\n${output.join('\n')}`))
        })
      })
    },
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const done = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)])
      if (!done) {
        child.kill('SIGKILL')
        await exited
      }
    },
  }
}

/** Stops every child at once and waits for all of them. */
export async function stopAll(children: readonly Child[]): Promise<void> {
  await Promise.all(children.map((c) => c.stop()))
}

/** Polls `check` every `intervalMs` until it returns true; throws after `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  { intervalMs = 100, timeoutMs = 300_000, children = [] as readonly Child[] } = {},
): Promise<void> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    if (await check()) return
    // A child that died (a crash, a bad config) will never finish the work: fail now, with its output.
    const dead = children.find((c) => c.exitStatus() !== undefined)
    if (dead)
      throw new Error(`${dead.name} exited (${dead.exitStatus()}) while waiting for ${what}\n${dead.output.join('\n')}`)
    if (performance.now() > deadline) {
      const output = children.map((c) => `--- ${c.name}\n${c.output.join('\n')}`).join('\n')
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${output}`)
    }
    await sleep(intervalMs)
  }
}
