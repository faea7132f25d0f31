import type { Executor, LineItem, OrderStatus } from '@postgres-queue/db'
import { orderTotalCents } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'

/**
 * An order as a processor sees it: as the api shows it (GET /orders/:id), its times as Dates. Not
 * the table's row: what only the queue uses (a lease's holder and fencing token, the trace context)
 * stays with the queue.
 */
export interface Order {
  id: number
  customerId: string
  currency: string
  items: LineItem[]
  /** In the currency's minor unit, computed from the items when the order was stored. */
  totalCents: number
  status: OrderStatus
  priority: number
  /** When it came due: its runAt, or for a retry, when its backoff ended. */
  runAt: Date
  /** Attempts counted so far, as stored (lease mode counts this one at its claim): ctx.attempt is this one's number. */
  attempts: number
  maxAttempts: number
  /** Why the last attempt failed, if one did. */
  lastError: string | null
  /** Orders of one key are processed one at a time, in submission order; null when it has none. */
  orderingKey: string | null
  createdAt: Date
  updatedAt: Date
}

/**
 * The seam between the queue and a team's business logic. Replace `processOrder` below (or pass
 * another OrderProcessor to `runWorker`) and the loop, claiming, retries and shutdown stay as they are.
 */
export interface ProcessContext {
  workerId: string
  /** 1 on the first try. */
  attempt: number
  /**
   * `order-<id>`: the same on every attempt. Pass it to outside services that deduplicate (a payment
   * gateway's Idempotency-Key), so a call repeated by a retry takes effect once. Append `ctx.attempt`
   * only for a call that must count as new on each attempt.
   */
  idempotencyKey: string
  /** Aborted when the order's time is up or the worker is forced to stop: pass it to fetch and friends. */
  signal: AbortSignal
  /** A child logger carrying orderId. */
  log: Logger
}

/**
 * Database writes of one order, run in the transaction that marks the order completed, inside a
 * savepoint of their own: they commit exactly when the order completes, and are undone (failing
 * only this order) if they throw.
 */
export type CommitWork = (tx: Executor) => Promise<void>

/**
 * Processes one order. Throwing fails this order only. Return a CommitWork for writes that must
 * happen exactly once with the completion; work outside the database (calls to other services)
 * belongs in the function body.
 */
// biome-ignore lint/suspicious/noConfusingVoidType: so that a processor written `async (order) => { ... }` (Promise<void>) fits
export type OrderProcessor = (order: Order, ctx: ProcessContext) => Promise<CommitWork | void>

/**
 * The sku the default processor refuses, on every attempt, as a payment gateway refuses a card: a
 * way to watch retries, dead letters and redrive with the stock worker (README, "Make orders fail").
 */
const FAILING_SKU = 'FAIL'

/**
 * The default processor: fulfils the order. Fulfilment here is checking the order is consistent
 * (the stored total is the sum of its lines); a real team would reserve stock or charge a card.
 */
export const processOrder: OrderProcessor = async (order) => {
  if (order.items.some((item) => item.sku === FAILING_SKU)) {
    throw new Error(`an item of sku ${FAILING_SKU}: the default processor refuses this order, on every attempt`)
  }
  const expected = orderTotalCents(order.items)
  if (expected !== order.totalCents) {
    throw new Error(`order total ${order.totalCents} does not match its items (${expected})`)
  }
}
