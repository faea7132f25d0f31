import type { Executor, FailureOutcome, Order } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { CommitWork } from './processor.js'
import { describeError, type ProcessorResult } from './run-processor.js'

// What both processing modes do once the processor has returned: run its commit work in a
// savepoint, and log one line per order.

export interface ProcessedOrder {
  order: Order
  /** 1 on the first try. */
  attempt: number
  result: ProcessorResult
  /** From when the order became claimable to when its processing started. */
  waitMs: number
}

/**
 * Runs one order's CommitWork in a savepoint of `tx`, so a throw undoes its writes and fails only
 * this order. A hung statement is ended by statement_timeout; a hang in JavaScript is bounded by
 * `timeoutMs` and, since it leaves the savepoint open, throws out of the whole transaction.
 */
export async function runCommitWork(tx: Executor, processed: ProcessedOrder, timeoutMs: number): Promise<ProcessedOrder> {
  const { result } = processed
  if (!result.ok || result.commit === undefined) return processed
  const commit: CommitWork = result.commit
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      tx.transaction((savepoint) => commit(savepoint)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CommitWorkTimeoutError(timeoutMs)), timeoutMs)
      }),
    ])
    return processed
  } catch (err) {
    if (err instanceof CommitWorkTimeoutError) throw err
    return { ...processed, result: { ok: false, error: describeError(err), processMs: result.processMs } }
  } finally {
    clearTimeout(timer)
  }
}

class CommitWorkTimeoutError extends Error {
  override readonly name = 'CommitWorkTimeoutError'
  constructor(timeoutMs: number) {
    super(`an order's commit work did not finish within ${timeoutMs} ms; the transaction is rolled back`)
  }
}

export type SettledOutcome = 'completed' | 'retried' | 'dead_lettered'

/** An order whose attempt is over and committed, for counters and metrics. */
export interface OrderSettled {
  orderId: number
  attempt: number
  outcome: SettledOutcome
  /** Absent for an order dead-lettered at claim (its lease lapsed on its last attempt). */
  waitMs?: number
  processMs?: number
}

/** Who hears about the worker's progress: the fleet heartbeat's counters and the metrics. */
export interface WorkerObserver {
  claimed(count: number): void
  settled(event: OrderSettled): void
  leaseLost(orderId: number): void
}

export const ignoreProgress: WorkerObserver = { claimed() {}, settled() {}, leaseLost() {} }

/** Tells several observers the same thing. */
export function observeAll(...observers: WorkerObserver[]): WorkerObserver {
  return {
    claimed: (count) => observers.forEach((o) => o.claimed(count)),
    settled: (event) => observers.forEach((o) => o.settled(event)),
    leaseLost: (id) => observers.forEach((o) => o.leaseLost(id)),
  }
}

/** The one line per processed order, once its outcome is committed, and the observer told. */
export function reportOrder(
  log: Logger,
  observer: WorkerObserver,
  workerId: string,
  processed: ProcessedOrder,
  failure?: FailureOutcome,
): void {
  const { order, attempt, result, waitMs } = processed
  const fields = {
    orderId: order.id,
    workerId,
    attempt,
    waitMs: Math.round(waitMs),
    processMs: Math.round(result.processMs * 100) / 100,
  }
  const outcome: SettledOutcome = result.ok ? 'completed' : failure?.status === 'failed' ? 'dead_lettered' : 'retried'
  if (result.ok) log.info(fields, 'order processed')
  else if (outcome === 'dead_lettered') log.error({ ...fields, error: result.error }, 'order failed; dead-lettered')
  else log.warn({ ...fields, error: result.error }, 'order failed; will retry')
  observer.settled({ orderId: order.id, attempt, outcome, waitMs, processMs: result.processMs })
}

export function waitSince(order: Order): number {
  return Math.max(0, Date.now() - order.runAt.getTime())
}
