import { claimOrders, completeOrders, type Db, failOrders } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { WorkerConfig } from './config.js'
import { type ProcessedOrder, reportOrder, runCommitWork, type WorkerObserver, waitSince } from './outcomes.js'
import type { OrderProcessor } from './processor.js'
import { runProcessor } from './run-processor.js'

export interface BatchDeps {
  db: Db
  processor: OrderProcessor
  config: Pick<
    WorkerConfig,
    'workerId' | 'batchSize' | 'orderTimeoutMs' | 'batchTimeoutMs' | 'leaseMs' | 'concurrency' | 'retry'
  >
  log: Logger
  observer: WorkerObserver
  /** Graceful stop: start no more orders; settle the ones in hand. */
  draining: AbortSignal
  /** Forced stop: abandon the batch in hand. */
  stop: AbortSignal
}

/**
 * Transaction mode (the default): ONE short transaction per batch claims the orders (row locks,
 * no write), runs the processor on each, and completes them all with one set-based statement.
 *
 * - One write per order: the completion (or the failure, with its backoff or dead letter).
 * - A worker that dies mid-batch drops its connection; the server rolls back and the orders are
 *   claimable again at once, with no lease to wait out.
 * - A processor's CommitWork runs in this transaction, in a savepoint: it commits exactly once,
 *   with the completion, or not at all.
 * - Bounded: an order starts only if its full timeout fits in the batch budget, and the server
 *   ends the session (rolling back) if it sits idle in the transaction past the order timeout.
 * - A graceful stop starts no more orders; those not started are released, unattempted, by the
 *   commit. A forced stop rolls the whole batch back.
 *
 * Returns how many orders were claimed, so the loop knows whether the queue may hold more.
 */
export async function runTransactionBatch(deps: BatchDeps): Promise<number> {
  const { config } = deps
  const outcome = await deps.db.transaction(async (tx) => {
    const claimed = await claimOrders(tx, { limit: config.batchSize })
    deps.observer.claimed(claimed.length)
    const deadline = performance.now() + config.batchTimeoutMs
    const processed: ProcessedOrder[] = []
    for (const order of claimed) {
      deps.stop.throwIfAborted()
      if (deps.draining.aborted) break
      // Orders that would not fit are left untouched: the commit releases their locks unattempted.
      // The first always fits (config keeps the order timeout within the budget).
      if (processed.length > 0 && performance.now() + config.orderTimeoutMs > deadline) break
      const waitMs = waitSince(order)
      const attempt = order.attempts + 1 // counted by the completion or failure below
      const result = await runProcessor(deps.processor, order, {
        workerId: config.workerId,
        attempt,
        timeoutMs: config.orderTimeoutMs,
        stop: deps.stop,
        log: deps.log,
      })
      deps.stop.throwIfAborted()
      processed.push(await runCommitWork(tx, { order, attempt, waitMs, result }, config.orderTimeoutMs))
    }
    const completed = processed.filter((p) => p.result.ok).map((p) => p.order.id)
    const failures = processed.flatMap((p) => (p.result.ok ? [] : [{ id: p.order.id, error: p.result.error }]))
    await completeOrders(tx, { ids: completed, workerId: config.workerId })
    const failed = await failOrders(tx, failures, config.retry)
    return { claimed: claimed.length, processed, failed }
  })
  const failures = new Map(outcome.failed.map((f) => [f.id, f]))
  for (const p of outcome.processed) reportOrder(deps.log, deps.observer, config.workerId, p, failures.get(p.order.id))
  return outcome.claimed
}
