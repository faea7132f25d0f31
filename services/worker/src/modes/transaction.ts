import {
  type ClaimedBatch,
  claimBatch,
  keysOf,
  type Order,
  type OrderFailure,
  type Settlement,
  settleBatch,
  settleBatchAndClaimNext,
} from '@postgres-queue/db'
import { runCommitWork } from './commit-work.js'
import { breaksItsBatch, partsToIsolate } from './isolate.js'
import type { BatchResult, ClaimSize, Mode, ModeDeps } from './mode.js'
import { combineFollowUps, followUpOf, type ProcessedOrder, reportOrder } from './report.js'
import { runProcessor } from './run-processor.js'
import { describeError } from './thrown.js'

/**
 * Transaction mode (the default): ONE short transaction per batch claims the orders (row locks,
 * no write), runs the processor on each, and completes them all with one set-based statement.
 *
 * - One write per order: the completion (or the failure, with its backoff or dead letter).
 * - A worker that dies mid-batch drops its connection; the server rolls back and the orders are
 *   claimable again at once, with no lease to wait out.
 * - A processor's CommitWork runs in this transaction, in a fenced savepoint: it commits exactly
 *   once, with the completion, or not at all, whatever it throws or however long it takes.
 * - Bounded: an order starts only if its full timeout fits in the batch budget, and the session is
 *   kept from sitting idle past the server's idle_in_transaction_session_timeout between orders.
 * - Stopping: no order starts after stopClaiming; those not started are released, unattempted, by
 *   the commit. abandonWork rolls the whole batch back.
 * - A batch whose transaction fails because of an order in it (a trigger refusing its completion,
 *   a CommitWork ending the session) is run again in parts until that order is alone, and its
 *   attempt is recorded alone (isolate.ts): the batch never fails forever.
 *
 * A full batch claims the next one with its commit, in the same write (one round trip per batch
 * while the queue is deep), and returns it for the next run (`claimedAhead`).
 */
export function transactionMode(deps: ModeDeps): Mode {
  return { run: (size, claimedAhead) => runIsolating(deps, claimedAhead ? { claimedAhead, size } : { size }) }
}

/** Which orders a run takes: those claimed ahead, a new claim of `size`, or only these (isolating). */
type Job = { claimedAhead: ClaimedBatch; size: ClaimSize } | { size: ClaimSize } | { only: readonly number[] }

/** A batch whose transaction failed: nothing of it committed. Its orders, and the one in hand. */
class BatchFailedError extends Error {
  override readonly name = 'BatchFailedError'
  constructor(
    readonly ids: readonly number[],
    cause: unknown,
    readonly inHand?: number,
  ) {
    super(`a batch of ${ids.length} orders failed and was rolled back`, { cause })
  }
}

async function runIsolating(deps: ModeDeps, job: Job): Promise<BatchResult> {
  try {
    return await runBatch(deps, job)
  } catch (err) {
    if (!(err instanceof BatchFailedError) || err.ids.length === 0 || deps.abandonWork.aborted) throw err
    // Failures of the moment (the database away, a lock, a deadlock) are retried as they are.
    if (!(await breaksItsBatch(deps.db, err.cause))) throw err
    if (err.ids.length === 1) return recordAlone(deps, err.ids[0] as number, err.cause)
    deps.log.warn(
      { err: err.cause, orders: err.ids.length },
      'batch failed; splitting it to isolate the order that breaks it',
    )
    const parts: BatchResult[] = []
    for (const only of partsToIsolate(err.ids, err.cause, err.inHand)) parts.push(await runIsolating(deps, { only }))
    return { claimed: err.ids.length, ...combineFollowUps(parts) }
  }
}

/** One batch: claimed (or claimed ahead), processed within its budget, settled, then reported. */
async function runBatch(deps: ModeDeps, job: Job): Promise<BatchResult> {
  const only = 'only' in job ? job.only : undefined
  const limit = only?.length ?? ('size' in job ? job.size.limit : 0)
  let batch: ClaimedBatch
  try {
    batch = 'claimedAhead' in job ? job.claimedAhead : await claimBatch(deps.db, { limit, ids: only })
  } catch (err) {
    throw new BatchFailedError([], err)
  }
  deps.observer.claimed(batch.orders.length)
  const ids = batch.orders.map((order) => order.id)
  const work: Work = { processed: [], inHand: undefined, processingFrom: performance.now() }
  let settled: Awaited<ReturnType<typeof settle>>
  try {
    await processWithinBudget(deps, batch, work)
    // The next claim goes with this commit while claims come back full, unless isolating or stopping.
    const full = only === undefined && 'size' in job && batch.orders.length === limit
    const next = full && !deps.stopClaiming.aborted && !deps.abandonWork.aborted ? job.size.next : 0
    settled = await settle(deps, batch, work.processed, next)
  } catch (err) {
    await batch.tx.rollback()
    throw new BatchFailedError(ids, err, work.inHand)
  }
  const failures = new Map(settled.failed.map((f) => [f.id, f]))
  for (const p of work.processed) reportOrder(deps.log, deps.observer, p, failures.get(p.order.id))
  const timing = { processingMs: settled.from - work.processingFrom, settlingMs: performance.now() - settled.from }
  return { claimed: ids.length, ...followUpOf(settled), claimedAhead: settled.next, timing }
}

/** A batch's orders processed so far, and the one in hand (the last started). */
interface Work {
  processed: ProcessedOrder[]
  inHand: number | undefined
  processingFrom: number
}

/**
 * Processes the batch's orders in turn, each with its CommitWork in a savepoint, while each one's
 * whole time fits in the batch budget (the first always does: the config keeps the order timeout
 * within it). Orders left over are not touched: the commit releases their locks, unattempted.
 */
async function processWithinBudget(deps: ModeDeps, batch: ClaimedBatch, work: Work): Promise<void> {
  const { orderTimeoutMs, batchTimeoutMs } = deps.config
  const deadline = work.processingFrom + batchTimeoutMs
  for (const order of batch.orders) {
    deps.abandonWork.throwIfAborted()
    if (deps.stopClaiming.aborted) break
    if (work.processed.length > 0 && performance.now() + orderTimeoutMs > deadline) break
    await batch.tx.keepAliveFor(orderTimeoutMs)
    work.inHand = order.id
    const processed = await processOne(deps, order)
    deps.abandonWork.throwIfAborted()
    work.processed.push(await runCommitWork(batch.tx, processed, { timeoutMs: orderTimeoutMs }))
  }
}

async function processOne(deps: ModeDeps, order: Order): Promise<ProcessedOrder> {
  const waitMs = deps.clock.waitSince(order.runAt)
  const attempt = order.attempts + 1 // counted by the completion or failure
  const result = await runProcessor(deps.processor, order, {
    workerId: deps.config.workerId,
    attempt,
    timeoutMs: deps.config.orderTimeoutMs,
    abandonWork: deps.abandonWork,
    log: deps.log,
  })
  return { order, attempt, waitMs, result }
}

/** Completes and fails the processed orders with the commit, and claims `next` orders with it (if any). */
async function settle(deps: ModeDeps, batch: ClaimedBatch, processed: readonly ProcessedOrder[], next: number) {
  const completed: number[] = []
  const failures: OrderFailure[] = []
  for (const p of processed) {
    if (p.result.ok) completed.push(p.order.id)
    else failures.push({ id: p.order.id, attempt: p.attempt, error: p.result.error })
  }
  const completedKeys = keysOf(processed.filter((p) => p.result.ok).map((p) => p.order))
  const settlement = { completed, completedKeys, failures, workerId: deps.config.workerId, policy: deps.config.retry }
  const from = performance.now()
  const settled: Settlement & { next?: ClaimedBatch } =
    next > 0
      ? await settleBatchAndClaimNext(batch.tx, settlement, { limit: next })
      : await settleBatch(batch.tx, settlement)
  return { ...settled, from }
}

/** Counts a failed attempt for the order that breaks every batch it is in, alone in its own transaction. */
async function recordAlone(deps: ModeDeps, id: number, cause: unknown): Promise<BatchResult> {
  const { tx, orders } = await claimBatch(deps.db, { limit: 1, ids: [id] })
  const [order] = orders
  if (order === undefined) {
    await tx.rollback() // taken or settled meanwhile
    return { claimed: 0 }
  }
  const attempt = order.attempts + 1
  const error = describeError(new PoisonOrderError(cause))
  const { workerId, retry } = deps.config
  const settled = await settleBatch(tx, { completed: [], failures: [{ id, attempt, error }], workerId, policy: retry })
  const [failed] = settled.failed
  if (failed === undefined) return { claimed: 0 }
  const deadLettered = failed.status === 'failed'
  deps.log.error(
    { orderId: id, attempt, err: cause },
    `order breaks its batch; ${deadLettered ? 'dead-lettered' : 'will retry'}`,
  )
  deps.observer.settled({ orderId: id, attempt, outcome: deadLettered ? 'dead_lettered' : 'retried' })
  return { claimed: 1, ...followUpOf(settled) }
}

class PoisonOrderError extends Error {
  override readonly name = 'PoisonOrderError'
  constructor(cause: unknown) {
    super(`the batch transaction failed with this order in it, and again with it alone: ${describeError(cause)}`)
  }
}
