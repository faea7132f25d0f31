import { setTimeout as sleep } from 'node:timers/promises'
import {
  extendLeases,
  type FailureOutcome,
  type Lease,
  type LeasedOrder,
  type LeaseSettlementInput,
  leaseOrders,
  lockLeasedOrders,
  releaseLeasedOrders,
  settleLeasedBatch,
  settleLeasedOrders,
} from '@postgres-queue/db'
import { type BatchDeps, type BatchResult, breaksItsBatch } from './batch.js'
import type { ClaimSize } from './lanes.js'
import { earliestRetry, type ProcessedOrder, reportOrder, runCommitWork, waitSince } from './outcomes.js'
import { runProcessor } from './run-processor.js'
import { describeError } from './thrown.js'

/** Heartbeats per lease period: a missed beat or two still leaves the lease alive. */
const HEARTBEATS_PER_LEASE = 3
/** Pauses between tries to complete while the database is away, as long as the leases last. */
const SETTLE_RETRY_MS = [100, 250, 500, 1000, 2000]

/**
 * Lease mode, for processors that wait on other services: no transaction is open while they run.
 *
 * 1. One committed statement leases a batch (status processing, holder, expiry, attempts + 1, a
 *    new fencing token per order).
 * 2. The orders are processed, `concurrency` at a time. A heartbeat extends the lease of EVERY
 *    order the batch holds, waiting, running or done, until it is completed or released: a healthy
 *    worker never loses a lease to a slow neighbour in its batch. A lease found taken over aborts
 *    that order's processor.
 * 3. A short transaction completes them: the fence locks the rows still held under their tokens,
 *    the CommitWork of those runs in fenced savepoints, and the completion and failures are two
 *    set-based statements. Bounded like a transaction-mode batch: a CommitWork starts only if its
 *    whole time fits in WORKER_BATCH_TIMEOUT_MS and before the leases it locks would lapse; the
 *    rest go in the next transaction, their leases extended meanwhile. While the database is away,
 *    completing is retried as long as the leases last; a completion that fails for another reason
 *    is split until the order that breaks it is alone, and that order alone is failed.
 *
 * Two writes per order (lease, completion). A dead worker's orders are rescued once their lease
 * lapses (promoteDueOrders). A graceful stop releases the leases of orders not yet started at once.
 */
export async function runLeaseBatch(deps: BatchDeps, size?: ClaimSize): Promise<BatchResult> {
  const { db, config } = deps
  const limit = size?.limit ?? config.batchSize
  // Before the claim: the leases last leaseMs from the server's clock during it, so at least this long.
  const claimedAt = performance.now()
  const leased = await leaseOrders(db, { limit, workerId: config.workerId, leaseMs: config.leaseMs })
  deps.observer.claimed(leased.length)
  if (leased.length === 0) return { claimed: 0 }

  const held = new HeldLeases(leased, config.leaseMs, claimedAt)
  const heartbeat = setInterval(() => void beat(deps, held), config.leaseMs / HEARTBEATS_PER_LEASE)
  try {
    const { processed, unstarted } = await processAll(deps, leased, held)
    if (unstarted.length > 0) {
      await releaseLeasedOrders(db, { leases: unstarted.map(({ order, lease }) => ({ ...lease, dueAt: order.runAt })) })
      held.drop(unstarted.map(({ lease }) => lease.id))
      deps.log.info({ orders: unstarted.length }, 'released unstarted leases')
    }
    const failed = await settle(deps, processed, held)
    return { claimed: leased.length, retryAt: earliestRetry(failed) }
  } finally {
    clearInterval(heartbeat)
  }
}

/**
 * The leases a batch holds until each order is completed or released, and until when each surely
 * lasts (performance.now(): when the statement that took or last extended it was sent, + leaseMs).
 */
class HeldLeases {
  private readonly leases = new Map<
    number,
    { lease: Lease; until: number; abortProcessor?: (reason: unknown) => void; settling?: boolean }
  >()

  constructor(
    leased: readonly LeasedOrder[],
    private readonly leaseMs: number,
    claimedAt: number,
  ) {
    for (const { lease } of leased) this.leases.set(lease.id, { lease, until: claimedAt + leaseMs })
  }

  /** The heartbeat in flight, if any (beat). */
  beating: Promise<void> | undefined

  /** Until when all of these leases surely last (those still held). */
  lastsUntil(ids: readonly number[]): number {
    let until = Number.POSITIVE_INFINITY
    for (const id of ids) until = Math.min(until, this.leases.get(id)?.until ?? until)
    return until
  }

  /**
   * The leases a heartbeat extends: all held but those being completed. Those are locked by the
   * completing transaction (no rescue can take them meanwhile), and an UPDATE of them would wait
   * for it, holding up the extension of every other lease in the statement.
   */
  toExtend(): Lease[] {
    return [...this.leases.values()].filter((held) => !held.settling).map((held) => held.lease)
  }

  isHeld(id: number): boolean {
    return this.leases.has(id)
  }

  /** Keeps the order's abort, called when its lease is found taken over (at once if it was). */
  watchLost(id: number, abort: (reason: unknown) => void): () => void {
    const held = this.leases.get(id)
    if (!held) {
      abort(new Error('lease lost'))
      return () => {}
    }
    held.abortProcessor = abort
    return () => {
      held.abortProcessor = undefined
    }
  }

  /**
   * Records a heartbeat that started at `at` over `beaten`, of which `stillHeld` are held: the
   * others were taken over, unless they were being completed meanwhile (the completion, not a
   * rival, is what they no longer match). Returns the leases lost.
   */
  extended(at: number, beaten: readonly Lease[], stillHeld: ReadonlySet<number>): Lease[] {
    const lost: Lease[] = []
    for (const lease of beaten) {
      const held = this.leases.get(lease.id)
      if (!held) continue
      if (stillHeld.has(lease.id)) held.until = at + this.leaseMs
      if (held.settling || stillHeld.has(lease.id)) continue
      lost.push(lease)
      held.abortProcessor?.(new Error('lease lost: the order was rescued after its lease lapsed'))
      this.leases.delete(lease.id)
    }
    return lost
  }

  /** These orders are being completed: a heartbeat that no longer matches them is not a loss. */
  settling(ids: readonly number[], settling: boolean): void {
    for (const id of ids) {
      const held = this.leases.get(id)
      if (held) held.settling = settling
    }
  }

  drop(ids: readonly number[]): void {
    for (const id of ids) this.leases.delete(id)
  }
}

/**
 * Extends every lease still held; aborts the processors of those taken over. Never rejects. One at
 * a time: a beat that waits on a lock (a migration's, another worker's) is joined, not overlapped by
 * another over the same rows, which could take their locks in another order and deadlock with it.
 * Kept in `held.beating` until it settles: a completion waits for it before locking its rows.
 */
function beat(deps: BatchDeps, held: HeldLeases): Promise<void> {
  held.beating ??= extendHeld(deps, held).finally(() => {
    held.beating = undefined
  })
  return held.beating
}

async function extendHeld(deps: BatchDeps, held: HeldLeases): Promise<void> {
  const leases = held.toExtend()
  if (leases.length === 0) return
  const started = performance.now()
  try {
    const still = new Set(await extendLeases(deps.db, { leases, leaseMs: deps.config.leaseMs }))
    for (const lease of held.extended(started, leases, still)) {
      deps.log.warn({ orderId: lease.id, attempt: lease.attempt }, 'lease lost to another worker')
      deps.observer.leaseLost(lease.id)
    }
  } catch (err) {
    // Retried on the next beat; if the leases lapse meanwhile, the fenced completion makes sure this
    // worker completes nothing it lost.
    deps.log.warn({ err }, 'lease heartbeat failed')
  }
}

/** Runs the processor on each order, `concurrency` at a time; a stop leaves the rest unstarted. */
async function processAll(
  deps: BatchDeps,
  leased: readonly LeasedOrder[],
  held: HeldLeases,
): Promise<{ processed: (ProcessedOrder & { lease: Lease })[]; unstarted: LeasedOrder[] }> {
  const processed: (ProcessedOrder & { lease: Lease })[] = []
  const queue = leased.values()
  const next = async (): Promise<void> => {
    // Checked before taking the next order, so a stop leaves it in the queue to be released.
    while (!deps.draining.aborted && !deps.stop.aborted) {
      const item = queue.next()
      if (item.done) return
      const { order, lease } = item.value
      if (!held.isHeld(order.id)) continue // taken over while it waited: not ours to process
      const waitMs = waitSince(order, deps.clock)
      const result = await runProcessor(deps.processor, order, {
        workerId: deps.config.workerId,
        attempt: lease.attempt,
        timeoutMs: deps.config.orderTimeoutMs,
        stop: deps.stop,
        watchLost: (abort) => held.watchLost(order.id, abort),
        log: deps.log,
      })
      processed.push({ order, attempt: lease.attempt, waitMs, result, lease })
    }
  }
  await Promise.all(Array.from({ length: Math.min(deps.config.concurrency, leased.length) }, next))
  return { processed, unstarted: [...queue] }
}

type Processed = ProcessedOrder & { lease: Lease }

/**
 * Completes the processed orders, fenced; returns the failures recorded. Retries while the database
 * is away and the leases last; splits a completion that fails for another reason.
 */
async function settle(deps: BatchDeps, processed: Processed[], held: HeldLeases): Promise<FailureOutcome[]> {
  const mine = processed.filter((p) => held.isHeld(p.order.id))
  for (const p of processed) {
    if (!held.isHeld(p.order.id)) logLost(deps, p)
  }
  if (mine.length === 0) return []
  for (let retry = 0; ; retry++) {
    try {
      return await completeProcessed(deps, mine, held)
    } catch (err) {
      if (deps.stop.aborted) throw err
      if (!(await breaksItsBatch(deps.db, err))) {
        const pause = SETTLE_RETRY_MS[Math.min(retry, SETTLE_RETRY_MS.length - 1)] as number
        if (performance.now() + pause < held.lastsUntil(mine.map((p) => p.order.id))) {
          deps.log.debug({ err, orders: mine.length }, 'could not complete; retrying while the leases last')
          await sleep(pause)
          continue
        }
        // The leases lapse: the rescue counts this attempt and the orders are processed again.
        throw err
      }
      if (mine.length === 1) return failAlone(deps, mine[0] as Processed, err, held)
      deps.log.warn(
        { err, orders: mine.length },
        'completing a batch failed; splitting it to isolate the order that breaks it',
      )
      const half = Math.ceil(mine.length / 2)
      return [...(await settle(deps, mine.slice(0, half), held)), ...(await settle(deps, mine.slice(half), held))]
    }
  }
}

/**
 * Settles the processed orders, fenced on their leases' tokens; then the log lines. Orders without
 * CommitWork are settled by one statement, committed on its own; those with it are locked first, in
 * a transaction their CommitWork runs in, and settled with its commit: as many as fit in one such
 * transaction (settleWithCommitWork), then the rest in the next.
 */
async function completeProcessed(deps: BatchDeps, processed: Processed[], held: HeldLeases): Promise<FailureOutcome[]> {
  const failed: FailureOutcome[] = []
  for (let rest = processed; rest.length > 0; ) {
    const ids = rest.map((p) => p.order.id)
    // A completing transaction's rows are not extended while it holds them (an extension would wait
    // on its locks): each must have time left for at least one CommitWork and a heartbeat after it.
    if (performance.now() + deps.config.orderTimeoutMs > held.lastsUntil(ids) - heartbeatMs(deps)) {
      await beat(deps, held)
    }
    held.settling(ids, true)
    // A heartbeat sent before they were marked may still be updating them: locking them meanwhile
    // would wait for it while it waits for the rows this transaction locked first, a deadlock.
    await held.beating
    const outcome = await (rest.some(hasCommitWork)
      ? settleWithCommitWork(deps, rest, held)
      : settleAlone(deps, rest)
    ).finally(() => held.settling(ids, false))
    held.drop(outcome.settled.map((p) => p.order.id))
    const failures = new Map(outcome.failed.map((f) => [f.id, f]))
    const completed = new Set(outcome.completed)
    for (const p of outcome.settled) {
      if (completed.has(p.order.id) || failures.has(p.order.id))
        reportOrder(deps.log, deps.observer, p, failures.get(p.order.id))
      else logLost(deps, p)
    }
    failed.push(...outcome.failed)
    rest = outcome.rest
  }
  return failed
}

const hasCommitWork = (p: Processed) => p.result.ok && p.result.commit !== undefined

const heartbeatMs = (deps: BatchDeps) => deps.config.leaseMs / HEARTBEATS_PER_LEASE

interface Settled {
  /** What this transaction settled (or found lost), in order. */
  settled: Processed[]
  completed: number[]
  failed: FailureOutcome[]
  /** What did not fit: for the next transaction. */
  rest: Processed[]
}

async function settleAlone(deps: BatchDeps, processed: Processed[]): Promise<Settled> {
  const { completed, failed } = await settleLeasedOrders(deps.db, settlement(deps, processed))
  return { settled: processed, completed, failed, rest: [] }
}

/**
 * One completing transaction: locks the orders still held, runs their CommitWork in order while the
 * next one's whole time fits in the budget (WORKER_BATCH_TIMEOUT_MS) and ends before the earliest of
 * their leases would lapse (the rows are locked, so no rescue takes them meanwhile, but a transaction
 * that then fails must leave them time to be extended), and commits what it settled. At least one.
 */
async function settleWithCommitWork(deps: BatchDeps, processed: Processed[], held: HeldLeases): Promise<Settled> {
  const { orderTimeoutMs, batchTimeoutMs } = deps.config
  const deadline = Math.min(
    performance.now() + batchTimeoutMs,
    held.lastsUntil(processed.map((p) => p.order.id)) - heartbeatMs(deps),
  )
  const { tx, held: locked } = await lockLeasedOrders(deps.db, { leases: processed.map((p) => p.lease) })
  try {
    const settled: Processed[] = []
    let ranCommitWork = false
    for (const p of processed) {
      if (!locked.has(p.order.id) || !hasCommitWork(p)) {
        settled.push(p)
        continue
      }
      if (ranCommitWork && performance.now() + orderTimeoutMs > deadline) break
      ranCommitWork = true
      settled.push({ ...(await runCommitWork(tx, p, { timeoutMs: orderTimeoutMs })), lease: p.lease })
    }
    const { completed, failed } = await settleLeasedBatch(
      tx,
      settlement(
        deps,
        settled.filter((p) => locked.has(p.order.id)),
      ),
    )
    return { settled, completed, failed, rest: processed.slice(settled.length) }
  } catch (err) {
    await tx.rollback()
    throw err
  }
}

function settlement(deps: BatchDeps, processed: Processed[]): LeaseSettlementInput {
  const succeeded: Lease[] = []
  const failures: LeaseSettlementInput['failures'][number][] = []
  for (const { lease, result } of processed) {
    if (result.ok) succeeded.push(lease)
    else failures.push({ ...lease, error: result.error })
  }
  return { succeeded, failures, workerId: deps.config.workerId, policy: deps.config.retry }
}

/** The order whose completion breaks its transaction even alone: its attempt fails, fenced, on its own. */
async function failAlone(deps: BatchDeps, p: Processed, cause: unknown, held: HeldLeases): Promise<FailureOutcome[]> {
  const error = describeError(new Error(`completing this order failed, even alone: ${describeError(cause)}`))
  const { lease } = p
  const { failed } = await settleLeasedOrders(deps.db, {
    succeeded: [],
    failures: [{ ...lease, error }],
    workerId: deps.config.workerId,
    policy: deps.config.retry,
  })
  held.drop([lease.id])
  const [outcome] = failed
  deps.log.error(
    { orderId: lease.id, attempt: lease.attempt, err: cause },
    'completing the order breaks its transaction',
  )
  if (outcome) {
    deps.observer.settled({
      orderId: lease.id,
      attempt: lease.attempt,
      outcome: outcome.status === 'failed' ? 'dead_lettered' : 'retried',
    })
  }
  return failed
}

/** A processed order this worker no longer holds: found by a heartbeat, or by the completion's fence. */
function logLost(deps: BatchDeps, { order, attempt }: ProcessedOrder): void {
  deps.log.warn({ orderId: order.id, attempt }, 'lease lost; the order is left to its new holder')
}
