import { and, asc, desc, eq, getTableColumns, gt, lte, sql } from 'drizzle-orm'
import { toSnakeCase } from 'drizzle-orm/casing'
import type { Executor } from '../client.js'
import { type LineItem, type OrderRow, type OrderStatus, orderStatuses, orders } from '../schema.js'

export type Order = OrderRow

/** What a client submits; the server derives the total and everything else. */
export interface NewOrder {
  customerId: string
  currency: string
  items: LineItem[]
  /** Higher runs first. Default 0. */
  priority?: number
  /** Not claimable before this instant. Default now. */
  runAt?: Date
  /** Claims before the order is dead-lettered. Default 5. */
  maxAttempts?: number
}

/** The sum of quantity x unit price, in minor units. Throws if it leaves the exact integer range. */
export function orderTotalCents(items: readonly LineItem[]): number {
  const total = items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0)
  if (!Number.isSafeInteger(total)) throw new RangeError(`order total ${total} is not an exact integer`)
  return total
}

/**
 * Inserts one or many orders in ONE statement (`insert ... select from unnest(...)`), so a batch
 * is one round trip and one commit, and the statement text (hence its prepared plan) is the same
 * for one row or a thousand. Returns the rows in submission order.
 *
 * Transition: (none) -> pending.
 */
export async function insertOrders(db: Executor, input: readonly NewOrder[]): Promise<Order[]> {
  if (input.length === 0) return []
  const rows = await db.execute(sql`
    insert into ${orders} (customer_id, currency, items, total_cents, priority, run_at, max_attempts)
    select customer_id, currency, items, total_cents, priority, coalesce(run_at, statement_timestamp()), max_attempts
    from unnest(
      ${sql.param(input.map((o) => o.customerId))}::text[],
      ${sql.param(input.map((o) => o.currency))}::text[],
      ${sql.param(input.map((o) => JSON.stringify(o.items)))}::jsonb[],
      ${sql.param(input.map((o) => orderTotalCents(o.items)))}::bigint[],
      ${sql.param(input.map((o) => o.priority ?? 0))}::int[],
      -- text, then cast: drizzle replaces postgres.js's timestamptz[] serializer with a pass-through
      ${sql.param(input.map((o) => o.runAt?.toISOString() ?? null))}::text[]::timestamptz[],
      ${sql.param(input.map((o) => o.maxAttempts ?? 5))}::int[]
    ) with ordinality as input(customer_id, currency, items, total_cents, priority, run_at, max_attempts, position)
    order by position
    returning *`)
  // Identity values are drawn in `position` order, so id order is submission order.
  return rows.map(decodeOrder).sort((a, b) => a.id - b.id)
}

/**
 * Transaction mode's claim: locks up to `limit` claimable orders (pending, `run_at` due), highest
 * priority first, then oldest. Must run inside a transaction; the locks are its claim.
 *
 * `FOR UPDATE SKIP LOCKED` makes concurrent claimers take disjoint rows without waiting for each
 * other. The plan is Limit -> LockRows -> Index Scan on `orders_claim_idx`: the scan walks the
 * partial index in claim order, skips rows another transaction holds, and stops after `limit`
 * locked rows, so the limit is applied once, after skipping. Writes nothing: the completion is the
 * order's one write. A rollback (or a crashed worker's dropped connection) releases the rows at once.
 *
 * Transition: none (pending stays pending until completeOrders/failOrders in the same transaction).
 */
export function claimOrders(tx: Executor, { limit }: { limit: number }) {
  return tx
    .select()
    .from(orders)
    // The status literal is part of the statement text, not a parameter: the planner can only match
    // the partial index's predicate against a constant.
    .where(and(sql`${orders.status} = 'pending'`, lte(orders.runAt, sql`now()`)))
    .orderBy(desc(orders.priority), asc(orders.runAt), asc(orders.id))
    .limit(limit)
    .for('update', { skipLocked: true })
}

/**
 * Completes claimed orders with one set-based statement. Counts the attempt that succeeded.
 * Returns how many rows it completed.
 *
 * Transition: pending (locked by this transaction) -> completed.
 */
export async function completeOrders(
  tx: Executor,
  { ids, workerId }: { ids: readonly number[]; workerId: string },
): Promise<number> {
  if (ids.length === 0) return 0
  const completed = await tx
    .update(orders)
    .set({
      status: 'completed',
      attempts: sql`${orders.attempts} + 1`,
      completedAt: sql`statement_timestamp()`,
      completedBy: workerId,
      updatedAt: sql`statement_timestamp()`,
    })
    .where(and(sql`${orders.id} = any(${sql.param(ids)}::bigint[])`, sql`${orders.status} = 'pending'`))
    .returning({ id: orders.id })
  return completed.length
}

export interface OrderFailure {
  id: number
  error: string
}

/**
 * Records failed attempts with one set-based statement: `attempts` + 1 and the error kept in
 * `last_error`; the order stays pending, claimable again.
 *
 * Transition: pending (locked by this transaction) -> pending.
 */
export async function failOrders(tx: Executor, failures: readonly OrderFailure[]): Promise<number> {
  if (failures.length === 0) return 0
  const failed = await tx.execute(sql`
    update ${orders} set
      attempts = ${orders.attempts} + 1,
      last_error = failure.error,
      updated_at = statement_timestamp()
    from unnest(
      ${sql.param(failures.map((f) => f.id))}::bigint[],
      ${sql.param(failures.map((f) => f.error))}::text[]
    ) as failure(id, error)
    where ${orders.id} = failure.id and ${orders.status} = 'pending'
    returning ${orders.id}`)
  return failed.length
}

/** One order by id, or undefined. */
export async function getOrder(db: Executor, id: number): Promise<Order | undefined> {
  const [order] = await db.select().from(orders).where(eq(orders.id, id))
  return order
}

export interface ListOrdersQuery {
  status?: OrderStatus
  /** Keyset cursor: only orders with an id greater than this. */
  after?: number
  limit: number
}

/** Orders in id order, optionally of one status, one page at a time (keyset on id). */
export function listOrders(db: Executor, query: ListOrdersQuery): Promise<Order[]> {
  return db
    .select()
    .from(orders)
    .where(
      and(
        query.status === undefined ? undefined : eq(orders.status, query.status),
        query.after === undefined ? undefined : gt(orders.id, query.after),
      ),
    )
    .orderBy(asc(orders.id))
    .limit(query.limit)
}

/** How many orders are in each status; every status is present, zero when none. */
export async function countOrdersByStatus(db: Executor): Promise<Record<OrderStatus, number>> {
  const rows = await db
    .select({ status: orders.status, n: sql<number>`count(*)::int` })
    .from(orders)
    .groupBy(orders.status)
  const counts = Object.fromEntries(orderStatuses.map((status) => [status, 0])) as Record<OrderStatus, number>
  for (const { status, n } of rows) counts[status] = n
  return counts
}

const orderColumns = Object.entries(getTableColumns(orders)).map(([key, column]) => ({
  key,
  name: toSnakeCase(key),
  column,
}))

/** Maps a raw `returning *` row (snake_case, driver values) to an Order, with drizzle's own decoders. */
function decodeOrder(row: Record<string, unknown>): Order {
  const order: Record<string, unknown> = {}
  for (const { key, name, column } of orderColumns) {
    const value = row[name]
    order[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value)
  }
  return order as Order
}
