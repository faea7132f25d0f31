import type { Order } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { CommitWork, OrderProcessor } from './processor.js'

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
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(new OrderTimeoutError(options.timeoutMs)), options.timeoutMs)
  const onStop = () => controller.abort(options.stop.reason)
  options.stop.addEventListener('abort', onStop, { once: true })
  const aborted = new Promise<never>((_, reject) => {
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true })
  })
  aborted.catch(() => {}) // only observed through the race below
  try {
    const commit = await Promise.race([
      processor(order, {
        workerId: options.workerId,
        attempt: options.attempt,
        idempotencyKey: `order-${order.id}`,
        signal: controller.signal,
        log: options.log.child({ orderId: order.id }),
      }),
      aborted,
    ])
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
