import type { FailureOutcome, Order, Settlement } from '@postgres-queue/db'
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

/** What settling left for the loop to do: an order to promote at `dueAt`, and orders due now. */
export interface FollowUp {
  /** The earliest order the settlement scheduled (a retry's backoff, a key's next order due later). */
  dueAt?: Date
  /** Orders it made due now that no claim has seen yet: the next orders of keys whose head completed. */
  promoted?: number
}

/** The follow-up of one or more settlements. */
export function followUpOf(...settlements: readonly Settlement[]): FollowUp {
  let dueAt: Date | undefined
  let promoted = 0
  for (const { failed, promoted: next } of settlements) {
    for (const o of [...failed, ...next]) if (o.status === 'scheduled' && (!dueAt || o.runAt < dueAt)) dueAt = o.runAt
    for (const o of next) if (o.status === 'pending') promoted++
  }
  return { ...(dueAt && { dueAt }), ...(promoted > 0 && { promoted }) }
}

/** The follow-ups of several parts of a batch, as one. */
export function combineFollowUps(parts: readonly FollowUp[]): FollowUp {
  let dueAt: Date | undefined
  let promoted = 0
  for (const part of parts) {
    if (part.dueAt && (!dueAt || part.dueAt < dueAt)) dueAt = part.dueAt
    promoted += part.promoted ?? 0
  }
  return { ...(dueAt && { dueAt }), ...(promoted > 0 && { promoted }) }
}
