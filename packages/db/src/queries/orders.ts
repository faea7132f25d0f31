import { and, asc, desc, eq, gt, lt, type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../client.js'
import { type LineItem, type OrderStatus, orderStatuses, orders } from '../schema.js'
import { decodeOrder, type Order } from './shared.js'

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
  /** The client's Idempotency-Key: at most one order is ever stored per key. */
  idempotencyKey?: string
  /** A hash of the request, stored with the key so a reuse with another body can be told apart. */
  requestHash?: string
}

/** An order as insertOrders returns it. */
export type InsertedOrder = Order & {
  /** False when the idempotency key was already taken: this is the order stored first under it. */
  created: boolean
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
 * for one row or a thousand. Returns one result per input, in submission order.
 *
 * An input whose idempotency key is taken inserts nothing (`on conflict do nothing` on the unique
 * index, so concurrent duplicates are safe: the second waits for the first to commit) and returns
 * the order stored under that key, with `created: false`. That lookup is a second statement: the
 * first's snapshot predates a concurrent duplicate's commit, so it could not see the row.
 *
 * Transition: (none) -> pending.
 */
export async function insertOrders(db: Executor, input: readonly NewOrder[]): Promise<InsertedOrder[]> {
  if (input.length === 0) return []
  const rows = await db.execute(insertStatement(input, sql`*`))
  // Identity values are drawn in `position` order, so id order is submission order.
  const inserted = rows.map(decodeOrder).sort((a, b) => a.id - b.id)
  const keys = input.flatMap((o) => (o.idempotencyKey === undefined ? [] : [o.idempotencyKey]))
  const byKey = new Map(inserted.flatMap((o) => (o.idempotencyKey === null ? [] : [[o.idempotencyKey, o] as const])))
  const taken = keys.filter((key) => !byKey.has(key))
  const existing = taken.length === 0 ? [] : await getOrdersByIdempotencyKey(db, taken)
  const firstFor = new Set<string>()
  const unkeyed = inserted.filter((o) => o.idempotencyKey === null).values()
  return input.map(({ idempotencyKey: key }) => {
    if (key === undefined) return { ...(unkeyed.next().value as Order), created: true }
    const created = byKey.has(key) && !firstFor.has(key)
    firstFor.add(key)
    const order = byKey.get(key) ?? existing.find((o) => o.idempotencyKey === key)
    if (order === undefined) throw new Error(`no order under idempotency key ${key}`)
    return { ...order, created }
  })
}

/**
 * Inserts orders that carry no idempotency key, in ONE statement as insertOrders does, and returns
 * only their ids, in submission order: bulk intake answers with ids, and reading back and decoding
 * every stored row was a quarter of the api's CPU on a 1,000-order batch.
 *
 * Transition: (none) -> pending.
 */
export async function insertOrdersReturningIds(
  db: Executor,
  input: readonly Omit<NewOrder, 'idempotencyKey' | 'requestHash'>[],
): Promise<number[]> {
  if (input.length === 0) return []
  const rows = await db.execute<{ id: string }>(insertStatement(input, sql`id`))
  return rows.map((row) => Number(row.id)).sort((a, b) => a - b)
}

/** The insert both functions above run; the statement text is the same for one row or a thousand. */
function insertStatement(input: readonly NewOrder[], returning: SQL): SQL {
  return sql`
    insert into ${orders} (customer_id, currency, items, total_cents, priority, run_at, max_attempts,
                           idempotency_key, request_hash)
    select customer_id, currency, items, total_cents, priority, coalesce(run_at, statement_timestamp()),
           max_attempts, idempotency_key, request_hash
    from unnest(
      ${sql.param(input.map((o) => o.customerId))}::text[],
      ${sql.param(input.map((o) => o.currency))}::text[],
      ${sql.param(input.map((o) => JSON.stringify(o.items)))}::jsonb[],
      ${sql.param(input.map((o) => orderTotalCents(o.items)))}::bigint[],
      ${sql.param(input.map((o) => o.priority ?? 0))}::int[],
      -- text, then cast: drizzle replaces postgres.js's timestamptz[] serializer with a pass-through
      ${sql.param(input.map((o) => o.runAt?.toISOString() ?? null))}::text[]::timestamptz[],
      ${sql.param(input.map((o) => o.maxAttempts ?? 5))}::int[],
      ${sql.param(input.map((o) => o.idempotencyKey ?? null))}::text[],
      ${sql.param(input.map((o) => o.requestHash ?? null))}::text[]
    ) with ordinality
      as input(customer_id, currency, items, total_cents, priority, run_at, max_attempts,
               idempotency_key, request_hash, position)
    order by position
    on conflict (idempotency_key) where idempotency_key is not null do nothing
    returning ${returning}`
}

async function getOrdersByIdempotencyKey(db: Executor, keys: readonly string[]): Promise<Order[]> {
  return db
    .select()
    .from(orders)
    .where(sql`${orders.idempotencyKey} = any(${sql.param(keys)}::text[])`)
}

/** One order by id, or undefined. */
export async function getOrder(db: Executor, id: number): Promise<Order | undefined> {
  const [order] = await db.select().from(orders).where(eq(orders.id, id))
  return order
}

export interface ListOrdersQuery {
  status?: OrderStatus
  /** Keyset cursor: only orders past this id in the listing's order (above it ascending, below it descending). */
  after?: number
  limit: number
  /** By id: oldest first (the default) or newest first. */
  order?: 'asc' | 'desc'
}

/**
 * Orders in id order, optionally of one status, one page at a time (keyset on id). Both directions
 * read an index forwards or backwards, so a page costs the same deep in the history as at its
 * start: orders_status_id_idx (status, id) for every status but completed, the primary key for
 * completed orders and for all of them.
 */
export function listOrders(db: Executor, query: ListOrdersQuery): Promise<Order[]> {
  const newestFirst = query.order === 'desc'
  const past = newestFirst ? lt : gt
  return db
    .select()
    .from(orders)
    .where(
      and(
        query.status === undefined ? undefined : eq(orders.status, query.status),
        query.after === undefined ? undefined : past(orders.id, query.after),
      ),
    )
    .orderBy(newestFirst ? desc(orders.id) : asc(orders.id))
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

export type CancelResult =
  | { outcome: 'cancelled'; order: Order }
  | { outcome: 'not_found' }
  /** The order exists but is not pending, or a worker holds it right now. */
  | { outcome: 'conflict'; order: Order; reason: string }

/**
 * Cancels a pending order. An order a worker holds (its batch transaction has it locked) is not
 * waited for: SKIP LOCKED passes it over and the result says it is being processed.
 *
 * Transition: pending -> cancelled.
 */
export async function cancelOrder(db: Executor, id: number): Promise<CancelResult> {
  const rows = await db.execute(sql`
    update ${orders} set status = 'cancelled', updated_at = statement_timestamp()
    where ${orders.id} = (
      select id from ${orders} where id = ${id} and status = 'pending' for update skip locked
    )
    returning *`)
  const [cancelled] = rows
  if (cancelled) return { outcome: 'cancelled', order: decodeOrder(cancelled) }
  const order = await getOrder(db, id)
  if (order === undefined) return { outcome: 'not_found' }
  const reason =
    order.status === 'pending' ? 'the order is being processed' : `the order is ${order.status}, not pending`
  return { outcome: 'conflict', order, reason }
}

export interface RetryQuery {
  /** Only these orders; every failed order when absent. */
  ids?: readonly number[]
  /** The most orders sent back in one call. */
  limit: number
}

/**
 * Redrive: sends failed (dead-lettered) orders back to pending, due now, with their attempts reset
 * so they get a full set of retries. `last_error` is kept as history. Returns the ids retried,
 * oldest first.
 *
 * Transition: failed -> pending.
 */
export async function retryOrders(db: Executor, query: RetryQuery): Promise<number[]> {
  const onlyIds = query.ids === undefined ? sql`` : sql`and id = any(${sql.param(query.ids)}::bigint[])`
  const rows = await db.execute(sql`
    update ${orders} set status = 'pending', attempts = 0, run_at = statement_timestamp(),
      updated_at = statement_timestamp()
    where ${orders.id} in (
      select id from ${orders} where status = 'failed' ${onlyIds}
      order by id limit ${query.limit}
      for update skip locked
    )
    returning ${orders.id}`)
  return rows.map((row) => Number(row.id)).sort((a, b) => a - b)
}
