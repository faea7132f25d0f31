import { type Db, oldestUnansweredCall } from '@postgres-queue/db'

/** How often the watch looks. */
const CHECK_EVERY_MS = 1000

export interface StallWatch {
  stop(): void
}

/**
 * Calls `onStalled` once if a call of the worker's batches to the database (a claim, a settlement,
 * a lease, a rollback: packages/db's `watched`) goes unanswered for `limitMs`. The server answers
 * every one of them within its statement_timeout, even if only to say it cancelled it; one still
 * unanswered past that and a margin is on a connection that stopped carrying anything, and the
 * batch on it will wait for the kernel's TCP timeout (about 15 minutes) unless the process goes.
 *
 * Time is counted in the watch's own ticks, not read off the clock: a process that was frozen (a
 * paused container, a suspended VM) would otherwise find every call late on waking, before its
 * socket's pending answers had been read.
 */
export function watchForStalls({
  db,
  limitMs,
  onStalled,
}: {
  db: Db
  limitMs: number
  onStalled: (stall: { unansweredMs: number }) => void
}): StallWatch {
  let watching: number | undefined
  let ticks = 0
  const timer = setInterval(() => {
    const oldest = oldestUnansweredCall(db)
    if (oldest !== watching) {
      watching = oldest
      ticks = 0
      return
    }
    if (oldest === undefined || ++ticks * CHECK_EVERY_MS < limitMs) return
    clearInterval(timer)
    onStalled({ unansweredMs: Math.round(performance.now() - oldest) })
  }, CHECK_EVERY_MS)
  timer.unref()
  return { stop: () => clearInterval(timer) }
}
