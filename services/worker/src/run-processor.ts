import type { Order } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { CommitWork, OrderProcessor, ProcessContext } from './processor.js'

export type ProcessorResult =
  | { ok: true; commit: CommitWork | undefined; processMs: number }
  | { ok: false; error: string; processMs: number }

/** The longest last_error kept: enough for a message and the top of a stack. */
const MAX_ERROR_LENGTH = 2000

export class OrderTimeoutError extends Error {
  override readonly name = 'OrderTimeoutError'
  constructor(timeoutMs: number) {
    super(`order processing timed out after ${timeoutMs} ms`)
  }
}

/**
 * Runs the processor on one order, bounded by `timeoutMs` and by `stop` (the worker's forced stop).
 * Never throws: the outcome says whether the order succeeded and, if not, why. A processor that
 * ignores its abort signal is abandoned, not awaited; since it never got a database handle, it
 * cannot write anything after the fact.
 */
export async function runProcessor(
  processor: OrderProcessor,
  order: Order,
  options: { workerId: string; attempt: number; timeoutMs: number; stop: AbortSignal; log: Logger },
): Promise<ProcessorResult> {
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
  const onStop = () => abort(options.stop.reason)
  options.stop.addEventListener('abort', onStop, { once: true })
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
    return { ok: true, commit: commit ?? undefined, processMs: performance.now() - started }
  } catch (err) {
    return { ok: false, error: describeError(err), processMs: performance.now() - started }
  } finally {
    clearTimeout(timer)
    options.stop.removeEventListener('abort', onStop)
  }
}

export function describeError(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
  return text.length > MAX_ERROR_LENGTH ? `${text.slice(0, MAX_ERROR_LENGTH - 1)}…` : text
}
