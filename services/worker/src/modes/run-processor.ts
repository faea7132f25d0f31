import type { Order as OrderRow } from '@postgres-queue/db'
import { type Logger, SpanStatusCode, startProcessSpan, traceContext } from '@postgres-queue/runtime'
import type { CommitWork, Order, OrderProcessor, ProcessContext } from '../processor.js'
import { describeError } from './thrown.js'

export type ProcessorResult =
  | { ok: true; commit: CommitWork | undefined; processMs: number }
  /** `error` is what last_error stores; `thrown` is kept for the log line, with its stack. */
  | { ok: false; error: string; thrown: unknown; processMs: number }

class OrderTimeoutError extends Error {
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
  abandonWork: AbortSignal
  /**
   * Hands over this order's own abort, for when its lease is found taken over; returns its
   * removal. A callback, not an AbortSignal: a signal per order, with its listener, cost lease mode
   * about a fifth of the worker's CPU in allocation and garbage collection (measured).
   */
  watchLost?: (abort: (reason: unknown) => void) => () => void
  log: Logger
}

/**
 * Runs the processor on one order, bounded by `timeoutMs`, `abandonWork` and `watchLost`. Never throws, whatever
 * the processor throws or returns: the outcome says whether the order succeeded and, if not, why.
 * A processor that ignores its abort signal is abandoned, not awaited; since it never got a
 * database handle, it cannot write anything after the fact.
 *
 * It runs once per order, so it allocates little: one promise, one timer, and the signal and child
 * logger only if the processor reads them. The long-lived `abandonWork` signal gets one listener for
 * the worker's life (onAbort), not one per order: `AbortSignal.any([abandonWork, ...])` per order left a
 * reference in `abandonWork` for every order ever processed (Node 20 never prunes them: about 40 MB per
 * 600k orders, measured).
 */
export function runProcessor(
  processor: OrderProcessor,
  order: OrderRow,
  options: RunOptions,
): Promise<ProcessorResult> {
  const started = performance.now()
  return new Promise((resolve) => {
    const context = new Context(order.id, options)
    // A child of the span that submitted the order (tracing on; a no-op otherwise).
    const traced = startProcessSpan(order.traceparent, { 'order.id': order.id, 'order.attempt': options.attempt })
    let done = false
    let unwatch = noop
    const finish = (result: ProcessorResult) => {
      if (done) return
      done = true
      clearTimeout(timer)
      unwatch()
      if (!result.ok) traced.span.setStatus({ code: SpanStatusCode.ERROR, message: result.error })
      traced.span.end()
      resolve(result)
    }
    const fail = (thrown: unknown) =>
      finish({ ok: false, error: describeError(thrown), thrown, processMs: performance.now() - started })
    const abort = (reason: unknown) => {
      if (context.abort(reason)) fail(reason)
    }
    const timer = setTimeout(() => abort(new OrderTimeoutError(options.timeoutMs)), options.timeoutMs)
    const unwatchAbandon = onAbort(options.abandonWork, abort)
    const unwatchLost = options.watchLost ? options.watchLost(abort) : noop
    unwatch = () => {
      unwatchAbandon()
      unwatchLost()
    }
    if (done) return unwatch() // aborted before it started
    let returned: ReturnType<OrderProcessor>
    try {
      returned = traceContext.with(traced.context, () => processor(forProcessor(order), context))
    } catch (thrown) {
      fail(thrown)
      return
    }
    Promise.resolve(returned).then((commit) => {
      if (commit !== undefined && commit !== null && typeof commit !== 'function') {
        fail(new TypeError(`the processor returned ${typeof commit}; it must return a CommitWork function or nothing`))
      } else {
        finish({ ok: true, commit: commit ?? undefined, processMs: performance.now() - started })
      }
    }, fail)
  })
}

/**
 * What a processor gets. A class, not an object literal with getters: V8 builds a literal's
 * accessors anew for every order (2 us each, measured), a class's once. The signal and the child
 * logger are made on first use: most processors read neither, and making both for every order was
 * a tenth of the worker's CPU with a no-op processor.
 */
class Context implements ProcessContext {
  readonly workerId: string
  readonly attempt: number
  private controller: AbortController | undefined
  private abortedFor: { reason: unknown } | undefined
  private logger: Logger | undefined

  constructor(
    private readonly orderId: number,
    private readonly options: RunOptions,
  ) {
    this.workerId = options.workerId
    this.attempt = options.attempt
  }

  get idempotencyKey(): string {
    return `order-${this.orderId}`
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController()
      if (this.abortedFor) this.controller.abort(this.abortedFor.reason)
    }
    return this.controller.signal
  }

  get log(): Logger {
    this.logger ??= this.options.log.child({ orderId: this.orderId })
    return this.logger
  }

  /** Aborts the order once; false when it already was. */
  abort(reason: unknown): boolean {
    if (this.abortedFor) return false
    this.abortedFor = { reason }
    this.controller?.abort(reason)
    return true
  }
}

/** The order as the processor sees it (processor.ts, Order): a copy, without what only the queue uses. */
function forProcessor(row: OrderRow): Order {
  const { id, customerId, currency, items, totalCents, status, priority, runAt } = row
  const { attempts, maxAttempts, lastError, orderingKey, createdAt, updatedAt } = row
  return {
    id,
    customerId,
    currency,
    items,
    totalCents,
    status,
    priority,
    runAt,
    attempts,
    maxAttempts,
    lastError,
    orderingKey,
    createdAt,
    updatedAt,
  }
}

const noop = () => {}

/** Each long-lived signal's callbacks, behind the one listener it gets. */
const watchers = new WeakMap<AbortSignal, Set<(reason: unknown) => void>>()

/** Calls `fn` when `signal` aborts (at once if it has); returns the unsubscribe. */
function onAbort(signal: AbortSignal, fn: (reason: unknown) => void): () => void {
  if (signal.aborted) {
    fn(signal.reason)
    return () => {}
  }
  let callbacks = watchers.get(signal)
  if (!callbacks) {
    const set = new Set<(reason: unknown) => void>()
    callbacks = set
    watchers.set(signal, set)
    signal.addEventListener(
      'abort',
      () => {
        for (const callback of set) callback(signal.reason)
      },
      { once: true },
    )
  }
  const set = callbacks
  set.add(fn)
  return () => void set.delete(fn)
}
