import type { BatchTransaction, FailureOutcome, Order } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { DatabaseClock } from './clock.js'
import type { ProcessorResult } from './run-processor.js'
import { describeError } from './thrown.js'

// What both processing modes do once the processor has returned: run its commit work in a fenced
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
 * Runs one order's CommitWork in a savepoint of `tx` (BatchTransaction.runInSavepoint): its writes
 * commit with the order's completion or not at all. If it throws or outlives `timeoutMs`, its
 * writes are undone (a statement still running is cancelled on the server first) and only this
 * order fails, its attempt counted like any other failure; the rest of the batch goes on. Throws
 * only when `tx` itself is broken. Call it only for orders that returned CommitWork.
 */
export async function runCommitWork(
  tx: BatchTransaction,
  processed: ProcessedOrder,
  { timeoutMs }: { timeoutMs: number },
): Promise<ProcessedOrder> {
  const { result } = processed
  if (!result.ok || result.commit === undefined) return processed
  const commit = result.commit
  const outcome = await tx.runInSavepoint((savepoint) => commit(savepoint), { timeoutMs })
  if (outcome.ok) return processed
  const thrown = outcome.timedOut ? new CommitWorkTimeoutError(timeoutMs) : outcome.error
  return { ...processed, result: { ok: false, error: describeError(thrown), thrown, processMs: result.processMs } }
}

class CommitWorkTimeoutError extends Error {
  override readonly name = 'CommitWorkTimeoutError'
  constructor(timeoutMs: number) {
    super(
      `the order's commit work did not finish within ${timeoutMs} ms; its statements were cancelled and rolled back`,
    )
  }
}

type SettledOutcome = 'completed' | 'retried' | 'dead_lettered'

/** An order whose attempt is over and committed, for counters and metrics. */
interface OrderSettled {
  orderId: number
  attempt: number
  outcome: SettledOutcome
  /** Absent for an order settled without running (a lapsed lease, an order isolated from a failing batch). */
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
    claimed: (count) => {
      for (const o of observers) o.claimed(count)
    },
    settled: (event) => {
      for (const o of observers) o.settled(event)
    },
    leaseLost: (id) => {
      for (const o of observers) o.leaseLost(id)
    },
  }
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
  const outcome: SettledOutcome = result.ok ? 'completed' : failure?.status === 'failed' ? 'dead_lettered' : 'retried'
  if (result.ok) log.info(fields, 'order processed')
  else if (outcome === 'dead_lettered') log.error({ ...fields, err: result.thrown }, 'order failed; dead-lettered')
  else log.warn({ ...fields, err: result.thrown, retryAt: failure?.runAt }, 'order failed; will retry')
  observer.settled({ orderId: order.id, attempt, outcome, waitMs, processMs: result.processMs })
}

/** How long `order` has waited since it came due, on the database's clock. */
export function waitSince(order: Order, clock: DatabaseClock): number {
  return Math.max(0, -clock.msUntil(order.runAt))
}

/** The earliest retry among `failures`, so the worker can promote it on time. */
export function earliestRetry(failures: readonly FailureOutcome[]): Date | undefined {
  let earliest: Date | undefined
  for (const f of failures) if (f.status === 'scheduled' && (!earliest || f.runAt < earliest)) earliest = f.runAt
  return earliest
}
