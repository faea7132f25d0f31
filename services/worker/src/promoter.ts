import { type Db, isDatabaseUnavailable, nextDueAt, promoteDueOrders } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { WorkerObserver } from './outcomes.js'

/** Orders promoted per statement; a larger backlog loops. */
const PROMOTE_BATCH = 1000
/** The longest a timer is set for; the schedule's ticks promote too, so a far date is not missed. */
const MAX_TIMER_MS = 60_000
/** After a failed run (the database away, a statement timed out), the next try. */
const RETRY_AFTER_FAILURE_MS = 1000
/**
 * A run that leaves something due behind (it came due as the run went by, the database's clock is
 * behind ours, or another transaction holds it) looks again this soon: not at once, which would spin
 * while a lock is held.
 */
const DUE_AGAIN_MS = 100

export interface Promoter {
  /** Promotes what is due now, then sets a timer for the next thing to come due. Never rejects. */
  run(): Promise<void>
  /** Something comes due at `at` (a retry, a scheduled submission): make sure a run happens then. */
  dueAt(at: Date): void
  stop(): void
}

/**
 * Moves what came due by time into the claim's reach (River's scheduler and rescuer in one):
 * scheduled orders whose runAt has come become pending, lapsed leases are given back (or
 * dead-lettered on their last attempt). It runs on every tick of the worker's schedule and, in
 * between, on a timer set for the next due time, so a delayed order or a retry is picked up on
 * time rather than at the next tick. Every worker runs one; concurrent runs take disjoint rows.
 *
 * `onPromoted` is called when orders became claimable, to drain them (and wake the fleet).
 */
export function createPromoter({
  db,
  log,
  observer,
  onPromoted,
}: {
  db: Db
  log: Logger
  observer: WorkerObserver
  onPromoted: () => void
}): Promoter {
  let running: Promise<void> | undefined
  let again = false
  let stopped = false
  let timer: { at: number; handle: NodeJS.Timeout } | undefined

  function arm(dueAt: number): void {
    // +1: the database keeps microseconds and a Date drops them, so a timer for `dueAt` could fire
    // up to a millisecond before the row comes due.
    const at = dueAt + 1
    if (stopped || (timer && timer.at <= at)) return
    if (timer) clearTimeout(timer.handle)
    const delay = Math.min(Math.max(0, at - Date.now()), MAX_TIMER_MS)
    const handle = setTimeout(() => {
      timer = undefined
      void run()
    }, delay)
    handle.unref()
    timer = { at: Date.now() + delay, handle }
  }

  async function promoteAll(): Promise<void> {
    let claimable = 0
    for (;;) {
      const { promoted, rescued, deadLettered } = await promoteDueOrders(db, { limit: PROMOTE_BATCH })
      claimable += promoted + rescued.length
      const byHolder = new Map<string | null, number[]>()
      for (const { id, heldBy } of rescued) byHolder.set(heldBy, [...(byHolder.get(heldBy) ?? []), id])
      for (const [heldBy, orders] of byHolder)
        log.warn({ heldBy, orders }, 'leases lapsed; the orders are pending again')
      for (const { id: orderId, attempts } of deadLettered) {
        log.error({ orderId, attempts }, 'lease lapsed on the last attempt; order dead-lettered')
        observer.settled({ orderId, attempt: attempts, outcome: 'dead_lettered' })
      }
      if (promoted + rescued.length + deadLettered.length < PROMOTE_BATCH) break
    }
    if (claimable > 0) onPromoted()
    const next = await nextDueAt(db)
    if (next) arm(next.getTime() > Date.now() ? next.getTime() : Date.now() + DUE_AGAIN_MS)
  }

  function run(): Promise<void> {
    if (running) {
      again = true
      return running
    }
    running = (async () => {
      do {
        again = false
        try {
          await promoteAll()
        } catch (err) {
          if (isDatabaseUnavailable(err)) log.debug({ err }, 'could not promote due orders')
          else log.warn({ err }, 'could not promote due orders')
          again = false
          // The timer that would have been set for the next due time was not: without this, a retry
          // due now would wait for the schedule's next tick (minutes, on a slow schedule).
          arm(Date.now() + RETRY_AFTER_FAILURE_MS)
        }
      } while (again && !stopped)
    })().finally(() => {
      running = undefined
    })
    return running
  }

  return {
    run,
    dueAt: (at) => arm(at.getTime()),
    stop() {
      stopped = true
      if (timer) clearTimeout(timer.handle)
      timer = undefined
    },
  }
}
