import { claimOrders, completeOrders, type Db, type Executor, failOrders, type Order } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { WorkerConfig } from './config.js'
import type { CommitWork, OrderProcessor } from './processor.js'
import { describeError, type ProcessorResult, runProcessor } from './run-processor.js'

export interface BatchDeps {
  db: Db
  processor: OrderProcessor
  config: Pick<WorkerConfig, 'workerId' | 'batchSize' | 'orderTimeoutMs' | 'batchTimeoutMs'>
  log: Logger
  /** The worker's forced stop: the batch in hand is rolled back. */
  stop: AbortSignal
}

export interface ProcessedOrder {
  order: Order
  result: ProcessorResult
  /** From when the order became claimable to when its processing started. */
  waitMs: number
}

/**
 * Transaction mode (the default): ONE short transaction per batch claims the orders (row locks,
 * no write), runs the processor on each, and completes them all with one set-based statement.
 *
 * - One write per order: the completion.
 * - A worker that dies mid-batch drops its connection; the server rolls back and the orders are
 *   claimable again at once, with no lease to wait out.
 * - A processor's CommitWork runs in this transaction, in a savepoint: it commits exactly once,
 *   with the completion, or not at all.
 * - Bounded: an order starts only if its full timeout fits in the batch budget, and the server
 *   ends the session (rolling back) if it sits idle in the transaction past the order timeout.
 *
 * Returns how many orders were claimed, so the loop knows whether the queue may hold more.
 */
export async function runTransactionBatch(deps: BatchDeps): Promise<number> {
  const { config } = deps
  const outcome = await deps.db.transaction(async (tx) => {
    const claimed = await claimOrders(tx, { limit: config.batchSize })
    const deadline = performance.now() + config.batchTimeoutMs
    const processed: ProcessedOrder[] = []
    for (const order of claimed) {
      deps.stop.throwIfAborted()
      // Orders that would not fit are left untouched: the commit releases their locks unattempted.
      // The first always fits (config keeps the order timeout within the budget).
      if (processed.length > 0 && performance.now() + config.orderTimeoutMs > deadline) break
      const waitMs = Math.max(0, Date.now() - order.runAt.getTime())
      const result = await runProcessor(deps.processor, order, {
        workerId: config.workerId,
        timeoutMs: config.orderTimeoutMs,
        stop: deps.stop,
        log: deps.log,
      })
      deps.stop.throwIfAborted()
      processed.push({ order, waitMs, result: result.ok && result.commit ? await runCommitWork(tx, result, config) : result })
    }
    const completed = processed.filter((p) => p.result.ok).map((p) => p.order.id)
    const failures = processed.flatMap((p) => (p.result.ok ? [] : [{ id: p.order.id, error: p.result.error }]))
    await completeOrders(tx, { ids: completed, workerId: config.workerId })
    await failOrders(tx, failures)
    return { claimed: claimed.length, processed }
  })
  for (const p of outcome.processed) logOrder(deps.log, config.workerId, p)
  return outcome.claimed
}

/** Runs one order's database writes in a savepoint, so a throw undoes them and fails only this order. */
async function runCommitWork(
  tx: Executor,
  result: ProcessorResult & { ok: true },
  config: Pick<WorkerConfig, 'orderTimeoutMs'>,
): Promise<ProcessorResult> {
  const commit = result.commit as CommitWork
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      tx.transaction((savepoint) => commit(savepoint)),
      // A hung database statement is ended by statement_timeout; this bounds a hang in JavaScript.
      // Escaping here leaves the savepoint open, so it throws out of the batch: all of it rolls back.
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CommitWorkTimeoutError(config.orderTimeoutMs)), config.orderTimeoutMs)
      }),
    ])
    return result
  } catch (err) {
    if (err instanceof CommitWorkTimeoutError) throw err
    return { ok: false, error: describeError(err), processMs: result.processMs }
  } finally {
    clearTimeout(timer)
  }
}

class CommitWorkTimeoutError extends Error {
  override readonly name = 'CommitWorkTimeoutError'
  constructor(timeoutMs: number) {
    super(`an order's commit work did not finish within ${timeoutMs} ms; the batch is rolled back`)
  }
}

/** The one line per processed order. */
function logOrder(log: Logger, workerId: string, { order, result, waitMs }: ProcessedOrder): void {
  const fields = {
    orderId: order.id,
    workerId,
    attempt: order.attempts + 1,
    waitMs: Math.round(waitMs),
    processMs: Math.round(result.processMs * 100) / 100,
  }
  if (result.ok) log.info(fields, 'order processed')
  else log.warn({ ...fields, error: result.error }, 'order failed')
}
