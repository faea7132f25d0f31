import { setTimeout as sleep } from 'node:timers/promises'
import { nowMs } from '../clock.js'
import type { ChildMessage, ParentMessage } from './protocol.js'
import { PROCESSOR_WAIT_ENV, REPORT_STARTS_ENV } from './protocol.js'

/** How often a worker script tells the bench its count: often enough to notice the end within a tick. */
const PROGRESS_INTERVAL_MS = 100

export interface Recorder {
  /** The handler started on `key` (sends the start time when the bench asked for starts). */
  started(key: number): void
  /** The handler is about to return for `key`. */
  done(key: number): void
  /** What the handler does between start and done: nothing, or wait as an outside call would. */
  work(): Promise<void> | undefined
  ready(): void
}

/**
 * The worker-script side of the protocol: counts what the handler saw, so the bench can check every
 * job ran exactly once without trusting the queue's own bookkeeping, and answers `report`.
 */
export function createRecorder(env: NodeJS.ProcessEnv): Recorder {
  const reportStarts = env[REPORT_STARTS_ENV] === '1'
  const waitMs = Number(env[PROCESSOR_WAIT_ENV] ?? 0)
  const keys: number[] = []
  let firstDoneAt: number | null = null
  let lastDoneAt: number | null = null
  let reported = 0

  const send = (message: ChildMessage) => {
    if (process.connected) process.send!(message)
  }
  setInterval(() => {
    if (keys.length === reported) return
    reported = keys.length
    send({ type: 'progress', handled: reported })
  }, PROGRESS_INTERVAL_MS).unref()
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'report') send({ type: 'report', keys, firstDoneAt, lastDoneAt })
  })

  return {
    started(key) {
      if (reportStarts) send({ type: 'started', key, at: nowMs() })
    },
    done(key) {
      const at = nowMs()
      firstDoneAt ??= at
      lastDoneAt = at
      keys.push(key)
    },
    work: () => (waitMs > 0 ? sleep(waitMs) : undefined),
    ready: () => send({ type: 'ready' }),
  }
}
