import { setTimeout as sleep } from 'node:timers/promises'
import { nowMs } from '../clock.js'

export interface OpenLoop {
  /** When the load began (epoch ms): job i was due at `began + i * 1000 / rate`. */
  began: number
  /** Each acknowledged job's key, and when it was due. */
  dueAt: ReadonlyMap<number, number>
  /** Jobs acknowledged so far. */
  acknowledged(): number
  /** Submissions that failed (not resent: the job is not part of the run). */
  errors(): number
  /** The longest a due job waited for a free call, in ms: above a few ms, the load generator fell behind. */
  longestWaitMs(): number
  /** Resolves once every job is due and every call has returned. */
  done: Promise<void>
}

/**
 * Open-loop load: job i is due `i * 1000 / rate` ms after the start, whatever the system answers,
 * and its latency counts from when it was due, not from when it was sent. So a slow answer cannot
 * slow the load down and hide its own cost (no coordinated omission), as a closed loop of N clients
 * would. At most `maxInFlight` calls are outstanding: a job due while they all are goes out as soon
 * as one returns, and that wait is in its latency. `submit` returns the job's key.
 */
export function startOpenLoop({
  rate,
  durationMs,
  maxInFlight,
  submit,
}: {
  rate: number
  durationMs: number
  maxInFlight: number
  submit: (index: number) => Promise<number>
}): OpenLoop {
  const interval = 1000 / rate
  const total = Math.floor((rate * durationMs) / 1000)
  const began = nowMs()
  const dueAt = new Map<number, number>()
  let inFlight = 0
  let errors = 0
  let longestWaitMs = 0

  const done = (async () => {
    for (let next = 0; next < total || inFlight > 0; ) {
      const now = nowMs()
      while (next < total && began + next * interval <= now && inFlight < maxInFlight) {
        const due = began + next * interval
        longestWaitMs = Math.max(longestWaitMs, now - due)
        inFlight += 1
        submit(next).then(
          (key) => {
            dueAt.set(key, due)
            inFlight -= 1
          },
          () => {
            errors += 1
            inFlight -= 1
          },
        )
        next += 1
      }
      // About a millisecond: at 3,000 jobs a second a few go out per turn, each on time to within it.
      await sleep(1)
    }
  })()

  return {
    began,
    dueAt,
    acknowledged: () => dueAt.size,
    errors: () => errors,
    longestWaitMs: () => longestWaitMs,
    done,
  }
}
