import { type Db, isDatabaseUnavailable, nextDueAt, type Promotion, promoteDueOrders } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { WorkerObserver } from '../observer.js'
import type { DatabaseClock } from './clock.js'

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

export interface PromoterDeps {
  db: Db
  clock: DatabaseClock
  log: Logger
  observer: WorkerObserver
  /** Orders became claimable: drain them (and wake the fleet). */
  onPromoted: () => void
}

/**
 * Moves what came due by time into the claim's reach (River's scheduler and rescuer in one):
 * scheduled orders whose runAt has come become pending, lapsed leases are given back (or
 * dead-lettered on their last attempt). It runs on every tick of the worker's schedule and, in
 * between, on a timer set for the next due time, so a delayed order or a retry is picked up on
 * time rather than at the next tick. Every worker runs one; concurrent runs take disjoint rows.
 *
 * Due times are the database's: each run reads its clock, and timers are set for how long until
 * then by it, whatever this host's clock says.
 */
export class Promoter {
  readonly #deps: PromoterDeps
  #running: Promise<void> | undefined
  #again = false
  #stopped = false
  /** The timer set, and when it fires (performance.now()). */
  #timer: { at: number; handle: NodeJS.Timeout } | undefined

  constructor(deps: PromoterDeps) {
    this.#deps = deps
  }

  /** Promotes what is due now, then sets a timer for the next thing to come due. Never rejects. */
  run(): Promise<void> {
    if (this.#running) {
      this.#again = true
      return this.#running
    }
    this.#running = this.#runUntilCaughtUp().finally(() => {
      this.#running = undefined
    })
    return this.#running
  }

  /**
   * Something comes due at `at`, a time on the database's clock (a retry, a scheduled submission):
   * make sure a run happens then.
   */
  dueAt(at: Date): void {
    this.#arm(this.#deps.clock.msUntil(at))
  }

  stop(): void {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer.handle)
    this.#timer = undefined
  }

  async #runUntilCaughtUp(): Promise<void> {
    do {
      this.#again = false
      try {
        await this.#promoteAll()
      } catch (err) {
        const { log } = this.#deps
        if (isDatabaseUnavailable(err)) log.debug({ err }, 'could not promote due orders')
        else log.warn({ err }, 'could not promote due orders')
        this.#again = false
        // The timer that would have been set for the next due time was not: without this, a retry
        // due now would wait for the schedule's next tick (minutes, on a slow schedule).
        this.#arm(RETRY_AFTER_FAILURE_MS)
      }
    } while (this.#again && !this.#stopped)
  }

  async #promoteAll(): Promise<void> {
    const { db, clock, onPromoted } = this.#deps
    let claimable = 0
    for (;;) {
      const promotion = await promoteDueOrders(db, { limit: PROMOTE_BATCH })
      const { promoted, rescued, deadLettered } = promotion
      claimable += promoted + rescued.length
      this.#reportLapsed(promotion)
      if (promoted + rescued.length + deadLettered.length < PROMOTE_BATCH) break
    }
    if (claimable > 0) onPromoted()
    const sentAt = Date.now()
    const { dueAt, databaseNow } = await nextDueAt(db)
    clock.observe(databaseNow, sentAt, Date.now())
    if (dueAt) this.#arm(dueAt > databaseNow ? dueAt.getTime() - databaseNow.getTime() : DUE_AGAIN_MS)
  }

  #reportLapsed({ rescued, deadLettered }: Pick<Promotion, 'rescued' | 'deadLettered'>): void {
    const { log, observer } = this.#deps
    const byHolder = new Map<string | null, number[]>()
    for (const { id, heldBy } of rescued) byHolder.set(heldBy, [...(byHolder.get(heldBy) ?? []), id])
    for (const [heldBy, orders] of byHolder) log.warn({ heldBy, orders }, 'leases lapsed; the orders are pending again')
    for (const { id: orderId, attempts } of deadLettered) {
      log.error({ orderId, attempts }, 'lease lapsed on the last attempt; order dead-lettered')
      observer.settled({ orderId, attempt: attempts, outcome: 'dead_lettered' })
    }
  }

  /** A run in `delayMs` (at most MAX_TIMER_MS), unless one is set sooner. */
  #arm(delayMs: number): void {
    // +1: the database keeps microseconds and a Date drops them, so a timer for a due time could
    // fire up to a millisecond before the row comes due.
    const delay = Math.min(Math.max(0, delayMs + 1), MAX_TIMER_MS)
    const at = performance.now() + delay
    if (this.#stopped || (this.#timer && this.#timer.at <= at)) return
    if (this.#timer) clearTimeout(this.#timer.handle)
    const handle = setTimeout(() => {
      this.#timer = undefined
      void this.run()
    }, delay)
    handle.unref()
    this.#timer = { at, handle }
  }
}
