import {
  type ClaimedBatch,
  claimBatch,
  type FailureOutcome,
  type Order,
  type OrderFailure,
  settleBatch,
  settleBatchAndClaimNext,
} from '@postgres-queue/db'
import { type BatchDeps, BatchFailedError, type BatchResult } from './batch.js'
import type { ClaimSize } from './lanes.js'
import { earliestRetry, type ProcessedOrder, reportOrder, runCommitWork, waitSince } from './outcomes.js'
import { runProcessor } from './run-processor.js'

/**
 * Transaction mode (the default): ONE short transaction per batch claims the orders (row locks,
 * no write), runs the processor on each, and completes them all with one set-based statement.
 *
 * - One write per order: the completion (or the failure, with its backoff or dead letter).
 * - A worker that dies mid-batch drops its connection; the server rolls back and the orders are
 *   claimable again at once, with no lease to wait out.
 * - A processor's CommitWork runs in this transaction, in a fenced savepoint: it commits exactly
 *   once, with the completion, or not at all, whatever it throws or however long it takes.
 * - Bounded: an order starts only if its full timeout fits in the batch budget, and the server
 *   ends the session (rolling back) if it sits idle in the transaction past the order timeout.
 * - A graceful stop starts no more orders; those not started are released, unattempted, by the
 *   commit. A forced stop rolls the whole batch back.
 *
 * A full batch claims the next one with its commit, in the same write (one round trip per batch
 * while the queue is deep), and returns it for the next call to run (`claimed`). `only` narrows the
 * claim to those orders (isolating one that breaks its batch: poison.ts). A failure of the
 * transaction itself throws BatchFailedError, naming the orders it had claimed.
 */
export async function runTransactionBatch(
  deps: BatchDeps,
  { only, claimed: prefetched, size }: { only?: readonly number[]; claimed?: ClaimedBatch; size?: ClaimSize } = {},
): Promise<BatchResult> {
  const { config, db } = deps
  const limit = only?.length ?? size?.limit ?? config.batchSize
  let claimed: Order[] = prefetched?.orders ?? []
  let inHand: number | undefined
  let outcome: { processed: ProcessedOrder[]; failed: FailureOutcome[]; next?: ClaimedBatch }
  let timing: BatchResult['timing']
  try {
    const batch = prefetched ?? (await claimBatch(db, { limit, ids: only }))
    claimed = batch.orders
    try {
      deps.observer.claimed(claimed.length)
      const processingFrom = performance.now()
      const deadline = processingFrom + config.batchTimeoutMs
      const processed: ProcessedOrder[] = []
      for (const order of claimed) {
        deps.stop.throwIfAborted()
        if (deps.draining.aborted) break
        // Orders that would not fit are left untouched: the commit releases their locks unattempted.
        // The first always fits (config keeps the order timeout within the budget).
        if (processed.length > 0 && performance.now() + config.orderTimeoutMs > deadline) break
        await batch.tx.keepAliveFor(config.orderTimeoutMs)
        inHand = order.id
        const result = await processOne(deps, order)
        deps.stop.throwIfAborted()
        processed.push(
          result.result.ok && result.result.commit
            ? await runCommitWork(batch.tx, result, { timeoutMs: config.orderTimeoutMs })
            : result,
        )
      }
      const completed: number[] = []
      const failures: OrderFailure[] = []
      for (const p of processed) {
        if (p.result.ok) completed.push(p.order.id)
        else failures.push({ id: p.order.id, attempt: p.attempt, error: p.result.error })
      }
      const settlement = { completed, failures, workerId: config.workerId, policy: config.retry }
      const nextLimit = size?.next ?? limit
      const claimNext =
        only === undefined && claimed.length === limit && nextLimit > 0 && !deps.draining.aborted && !deps.stop.aborted
      const settlingFrom = performance.now()
      outcome = claimNext
        ? { processed, ...(await settleBatchAndClaimNext(batch.tx, settlement, { limit: nextLimit })) }
        : { processed, failed: await settleBatch(batch.tx, settlement) }
      timing = { processingMs: settlingFrom - processingFrom, settlingMs: performance.now() - settlingFrom }
    } catch (err) {
      await batch.tx.rollback()
      throw err
    }
  } catch (err) {
    throw new BatchFailedError(
      claimed.map((order) => order.id),
      err,
      inHand,
    )
  }
  const failures = new Map(outcome.failed.map((f) => [f.id, f]))
  for (const p of outcome.processed) reportOrder(deps.log, deps.observer, p, failures.get(p.order.id))
  return { claimed: claimed.length, retryAt: earliestRetry(outcome.failed), next: outcome.next, timing }
}

async function processOne(deps: BatchDeps, order: Order): Promise<ProcessedOrder> {
  const waitMs = waitSince(order, deps.clock)
  const attempt = order.attempts + 1 // counted by the completion or failure
  const result = await runProcessor(deps.processor, order, {
    workerId: deps.config.workerId,
    attempt,
    timeoutMs: deps.config.orderTimeoutMs,
    stop: deps.stop,
    log: deps.log,
  })
  return { order, attempt, waitMs, result }
}
