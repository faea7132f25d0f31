import type { FailureOutcome, Order } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { OrderSettled, WorkerObserver } from '../observer.js'
import type { ProcessorResult } from './run-processor.js'

// What both modes say of an order once its outcome is committed: one log line, and the observer told.

export interface ProcessedOrder {
  order: Order
  /** 1 on the first try. */
  attempt: number
  result: ProcessorResult
  /** From when the order became claimable to when its processing started. */
  waitMs: number
}

/**
 * The one line per processed order, once its outcome is committed, and the observer told. A
 * failure is logged with what was thrown (type, message, stack); the stored error is in last_error.
 */
export function reportOrder(
  log: Logger,
  observer: WorkerObserver,
  processed: ProcessedOrder,
  failure?: FailureOutcome,
): void {
  const { order, attempt, result, waitMs } = processed
  const fields = {
    orderId: order.id,
    attempt,
    waitMs: Math.round(waitMs),
    processMs: Math.round(result.processMs * 100) / 100,
  }
  const outcome: OrderSettled['outcome'] = result.ok
    ? 'completed'
    : failure?.status === 'failed'
      ? 'dead_lettered'
      : 'retried'
  if (result.ok) log.info(fields, 'order processed')
  else if (outcome === 'dead_lettered') log.error({ ...fields, err: result.thrown }, 'order failed; dead-lettered')
  else log.warn({ ...fields, err: result.thrown, retryAt: failure?.runAt }, 'order failed; will retry')
  observer.settled({ orderId: order.id, attempt, outcome, waitMs, processMs: result.processMs })
}

/** The earliest retry among `failures`, so the worker can promote it on time. */
export function earliestRetry(failures: readonly FailureOutcome[]): Date | undefined {
  let earliest: Date | undefined
  for (const f of failures) if (f.status === 'scheduled' && (!earliest || f.runAt < earliest)) earliest = f.runAt
  return earliest
}
