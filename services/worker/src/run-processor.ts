import type { Order } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { CommitWork, OrderProcessor, ProcessContext } from './processor.js'
import { describeError } from './thrown.js'

export type ProcessorResult =
  | { ok: true; commit: CommitWork | undefined; processMs: number }
  /** `error` is what last_error stores; `thrown` is kept for the log line, with its stack. */
  | { ok: false; error: string; thrown: unknown; processMs: number }

export class OrderTimeoutError extends Error {
  override readonly name = 'OrderTimeoutError'
  constructor(timeoutMs: number) {
    super(`order processing timed out after ${timeoutMs} ms`)
  }
}

export interface RunOptions {
  workerId: string
  attempt: number
  timeoutMs: number
  /** The worker's forced stop: aborts every order in hand. */
  stop: AbortSignal
  /** This order's own abort, e.g. its lease taken over. */
  lost?: AbortSignal
  log: Logger
}

/**
 * Runs the processor on one order, bounded by `timeoutMs`, `stop` and `lost`. Never throws, whatever
 * the processor throws or returns: the outcome says whether the order succeeded and, if not, why.
 * A processor that ignores its abort signal is abandoned, not awaited; since it never got a
 * database handle, it cannot write anything after the fact.
 *
 * The long-lived signals are listened to, and the listeners removed when the order is done:
 * `AbortSignal.any([stop, ...])` per order would leave a reference in `stop` for every order ever
 * processed (Node 20 never prunes them: about 40 MB per 600k orders, measured).
 */
export async function runProcessor(processor: OrderProcessor, order: Order, options: RunOptions): Promise<ProcessorResult> {
  const started = performance.now()
  let abortedFor: { reason: unknown } | undefined
  let controller: AbortController | undefined
  let rejectAborted: (reason: unknown) => void = () => {}
  const aborted = new Promise<never>((_, reject) => (rejectAborted = reject))
  aborted.catch(() => {}) // only observed through the race below
  const abort = (reason: unknown) => {
    if (abortedFor) return
    abortedFor = { reason }
    controller?.abort(reason)
    rejectAborted(reason)
  }
  const timer = setTimeout(() => abort(new OrderTimeoutError(options.timeoutMs)), options.timeoutMs)
  const { stop, lost } = options
  const onStop = () => abort(stop.reason)
  const onLost = () => abort(lost?.reason)
  if (stop.aborted) onStop()
  else stop.addEventListener('abort', onStop, { once: true })
  if (lost?.aborted) onLost()
  else lost?.addEventListener('abort', onLost, { once: true })
  let log: Logger | undefined
  // The signal and the child logger are made on first use: most processors read neither, and
  // making both for every order was a tenth of the worker's CPU with a no-op processor.
  const context: ProcessContext = {
    workerId: options.workerId,
    attempt: options.attempt,
    idempotencyKey: `order-${order.id}`,
    get signal() {
      if (!controller) {
        controller = new AbortController()
        if (abortedFor) controller.abort(abortedFor.reason)
      }
      return controller.signal
    },
    get log() {
      return (log ??= options.log.child({ orderId: order.id }))
    },
  }
  try {
    const commit = await Promise.race([processor(order, context), aborted])
    if (commit !== undefined && commit !== null && typeof commit !== 'function') {
      throw new TypeError(`the processor returned ${typeof commit}; it must return a CommitWork function or nothing`)
    }
    return { ok: true, commit: commit ?? undefined, processMs: performance.now() - started }
  } catch (thrown) {
    return { ok: false, error: describeError(thrown), thrown, processMs: performance.now() - started }
  } finally {
    clearTimeout(timer)
    stop.removeEventListener('abort', onStop)
    lost?.removeEventListener('abort', onLost)
  }
}
