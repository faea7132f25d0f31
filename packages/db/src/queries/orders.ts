import { and, asc, desc, eq, gt, lt, type SQL, sql } from 'drizzle-orm'
import type { Db, Executor } from '../client.js'
import { idempotencyKeys, keyHeadStatus, type LineItem, type OrderStatus, orderStatuses, orders } from '../schema.js'
import { type BoundQuery, Statement } from '../statement.js'
import { BatchTransaction, drizzleOf, runPrepared } from '../transaction.js'
import { decodePromoted, keysOf, lockOrderingKeys, type Promoted, promoteHeadless } from './ordering-keys.js'
import { decodeOrder, decodeOrderValues, type Order, orderColumnList } from './shared.js'
import { channelOf } from './wakeups.js'

/** What a client submits; the server derives the total and everything else. */
export interface NewOrder {
  customerId: string
  currency: string
  items: LineItem[]
  /** Higher runs first. Default 0. */
  priority?: number
  /** Not claimable before this instant; a past instant means now. Default now. */
  runAt?: Date
  /**
   * Not claimable for this long after the insert, counted on the database's clock (not with runAt):
   * an api host whose clock is off by a minute must not move the order by a minute.
   */
  delaySeconds?: number
  /** Claims before the order is dead-lettered. Default 5. */
  maxAttempts?: number
  /** W3C traceparent of the submitting span, when tracing is on. */
  traceparent?: string
  /**
   * Orders with the same key are processed one at a time, in submission (id) order, across the
   * fleet: this one waits until every earlier one of its key is completed, cancelled or skipped.
   */
  orderingKey?: string
}

/** A client's Idempotency-Key and what it was sent with. */
export interface IdempotencyKey {
  key: string
  /** A hash of the request, so a retry can be told from a reuse of the key for another request. */
  requestHash: string
}

/** One request's orders, stored together or not at all, under its key if it has one. */
export interface Submission {
  orders: readonly NewOrder[]
  idempotency?: IdempotencyKey
}

export type SubmissionResult =
  /** Stored now: the ids in submission order, and the rows when asked for; and what to wake workers for. */
  | { stored: true; ids: number[]; orders: Order[]; due: Due }
  /** Nothing stored: the key was taken, by an earlier request or one in the same call. */
  | { stored: false; key: string }

/** When stored orders come due, on the database's clock: some now, and the earliest of those due later. */
export interface Due {
  now: boolean
  earliestLater?: Date
}

/** The sum of quantity x unit price, in minor units. Throws if it leaves the exact integer range. */
export function orderTotalCents(items: readonly LineItem[]): number {
  const total = items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0)
  if (!Number.isSafeInteger(total)) throw new RangeError(`order total ${total} is not an exact integer`)
  return total
}

/**
 * Stores submissions in ONE statement, so a group of requests is one round trip and one commit,
 * and an error means nothing of it was stored. The statement text is the same for one order or a
 * thousand, so its prepared plan is reused.
 *
 * A submission with a key stores its orders only if it also stores the key (`on conflict do
 * nothing` on the key's primary key: of concurrent duplicates, one stores and the others wait for
 * its commit and store nothing). Its result is then `{ stored: false }`; findIdempotencyKeys says
 * what the key stored. A key repeated within `submissions` stores once, for its first submission.
 *
 * An order due now (or at a past instant) is pending; one due later is scheduled; one behind an
 * earlier order of its orderingKey is waiting. Submissions with keys lock them first, in the same
 * transaction (ordering-keys.ts), so that ids are drawn in the order the keys' lines are joined.
 * `returnRows`
 * reads back and decodes every stored row; bulk intake answers with ids, and decoding was a quarter
 * of the api's CPU on a 1,000-order batch.
 *
 * `notify`: the insert itself tells listening workers, in its own transaction, when it stores an
 * order due now, so the notification arrives with the commit instead of a round trip after it.
 * Only for an insert made while the intake is idle: the notifying commit holds a cluster-wide lock
 * through its WAL flush (notifyOrdersWaiting), and concurrent ones would not share an fsync.
 *
 * Transition: (none) -> pending | scheduled | waiting.
 */
export async function insertSubmissions(
  db: Db,
  submissions: readonly Submission[],
  { returnRows, notify = false }: { returnRows: boolean; notify?: boolean },
): Promise<SubmissionResult[]> {
  const firstWithKey = new Map<string, number>()
  const included = submissions.map((s, i) => {
    const key = s.idempotency?.key
    if (key === undefined) return true
    if (firstWithKey.has(key)) return false
    firstWithKey.set(key, i)
    return true
  })
  const rows = submissions.flatMap((s, i) =>
    included[i] ? s.orders.map((order) => ({ submission: i, order, idempotency: s.idempotency })) : [],
  )
  const query = insertStatement(rows, returnRows, notify ? channelOf(db) : undefined)
  const keys = keysOf(rows.map((row) => row.order))
  const stored: Record<string, unknown>[] =
    rows.length === 0 ? [] : keys.length === 0 ? await db.execute(query) : await underKeyLocks(db, keys, query)
  const bySubmission = new Map<number, Record<string, unknown>[]>()
  for (const row of stored) {
    const i = Number(row.submission)
    const mine = bySubmission.get(i)
    if (mine) mine.push(row)
    else bySubmission.set(i, [row])
  }
  return submissions.map((s, i) => {
    const mine = bySubmission.get(i)
    if (mine === undefined) return { stored: false, key: s.idempotency?.key ?? '' }
    // Ids are drawn in submission order, so id order is submission order.
    mine.sort((a, b) => Number(a.id) - Number(b.id))
    return {
      stored: true,
      ids: mine.map((row) => Number(row.id)),
      orders: returnRows ? mine.map(decodeOrder) : [],
      due: dueOf(mine),
    }
  })
}

/** Stores orders without keys, in one statement (insertSubmissions), and returns them as stored. */
export async function insertOrders(db: Db, input: readonly NewOrder[]): Promise<Order[]> {
  if (input.length === 0) return []
  const [result] = await insertSubmissions(db, [{ orders: input }], { returnRows: true })
  return result?.stored ? result.orders : []
}

/** `query` in a transaction that first locks `keys` (lockOrderingKeys): BEGIN, then both in one write. */
async function underKeyLocks(db: Db, keys: readonly string[], query: SQL): Promise<Record<string, unknown>[]> {
  const lock = lockOrderingKeys.bind(db, { keys })
  const insert = drizzleOf(db).dialect.sqlToQuery(query)
  return db.$client.begin(async (tx) => {
    const [, rows] = await Promise.all([
      tx.unsafe(lock.sql, lock.params as never[], { prepare: true }),
      tx.unsafe(insert.sql, insert.params as never[]),
    ])
    return rows as unknown as Record<string, unknown>[]
  })
}

function dueOf(rows: readonly Record<string, unknown>[]): Due {
  let now = false
  let earliestLater: Date | undefined
  for (const { scheduled_at: at, status } of rows) {
    if (status === 'waiting') continue // due when its key's earlier orders are done: the worker settling them promotes it
    if (at === null || at === undefined) now = true
    else if (earliestLater === undefined || new Date(at as string) < earliestLater)
      earliestLater = new Date(at as string)
  }
  return earliestLater === undefined ? { now } : { now, earliestLater }
}

interface InsertRow {
  submission: number
  order: NewOrder
  idempotency: IdempotencyKey | undefined
}

function insertStatement(rows: readonly InsertRow[], returnRows: boolean, notifyChannel?: string): SQL {
  const column = <T>(pick: (row: InsertRow) => T) => sql.param(rows.map(pick))
  return sql`
    with input as materialized (
      select nextval(${orderIdSequence}) as id, input.*,
             greatest(coalesce(input.requested_run_at,
                               statement_timestamp() + input.delay_seconds * interval '1 second',
                               statement_timestamp()),
                      statement_timestamp()) as run_at
      from unnest(
        ${column((r) => r.submission)}::int[],
        ${column((r) => r.order.customerId)}::text[],
        ${column((r) => r.order.currency)}::text[],
        ${column((r) => JSON.stringify(r.order.items))}::jsonb[],
        ${column((r) => orderTotalCents(r.order.items))}::bigint[],
        ${column((r) => r.order.priority ?? 0)}::int[],
        -- text, then cast: drizzle replaces postgres.js's timestamptz[] serializer with a pass-through
        ${column((r) => r.order.runAt?.toISOString() ?? null)}::text[]::timestamptz[],
        ${column((r) => r.order.delaySeconds ?? null)}::int[],
        ${column((r) => r.order.maxAttempts ?? 5)}::int[],
        ${column((r) => r.idempotency?.key ?? null)}::text[],
        ${column((r) => r.idempotency?.requestHash ?? null)}::text[],
        ${column((r) => r.order.traceparent ?? null)}::text[],
        ${column((r) => r.order.orderingKey ?? null)}::text[]
      ) with ordinality
        as input(submission, customer_id, currency, items, total_cents, priority, requested_run_at,
                 delay_seconds, max_attempts, idempotency_key, request_hash, traceparent, ordering_key, position)
      order by position
    ),
    keys as (
      insert into ${idempotencyKeys} (key, request_hash, order_ids)
      select idempotency_key, min(request_hash), array_agg(id order by position)
      from input where idempotency_key is not null
      group by idempotency_key
      on conflict (key) do nothing
      returning key
    ),
    accepted as (
      select input.*, row_number() over (partition by ordering_key order by position) as place_in_key
      from input
      where idempotency_key is null or idempotency_key in (select key from keys)
    ),
    stored as (
      insert into ${orders} (id, customer_id, currency, items, total_cents, status, priority, run_at, max_attempts,
                             traceparent, ordering_key, created_at, updated_at)
      overriding system value
      select id, customer_id, currency, items, total_cents,
             (case
                -- Behind an earlier order of its key: this submission's, or a head already in line.
                when ordering_key is not null and (place_in_key > 1 or exists (
                  select from ${orders} as head
                  where head.ordering_key = accepted.ordering_key
                    and ${keyHeadStatus(sql`head.status`, sql`head.skipped_at`)})) then 'waiting'
                when run_at > statement_timestamp() then 'scheduled'
                else 'pending' end),
             priority, run_at, max_attempts, traceparent, ordering_key, statement_timestamp(), statement_timestamp()
      from accepted
      order by position
      returning ${returnRows ? sql`*` : sql`${orders.id}, ${orders.status}`}
    )${
      notifyChannel === undefined
        ? sql``
        : sql`,
    notified as (
      select pg_notify(${notifyChannel}, '') where exists (select from stored where status = 'pending')
    )`
    }
    select stored.*, input.submission,
           case when input.run_at > statement_timestamp() then input.run_at end as scheduled_at
    from stored join input using (id)${
      // A CTE that is not read is not run: this reads it, once.
      notifyChannel === undefined ? sql`` : sql` where (select count(*) from notified) >= 0`
    }`
}

/** The identity sequence of orders.id, drawn by the insert so a key can record its orders' ids. */
const orderIdSequence = sql`'orders_id_seq'::regclass`

/** What an Idempotency-Key stored, and when. */
export interface StoredKey {
  key: string
  requestHash: string
  orderIds: number[]
  createdAt: Date
}

/**
 * The keys among `keys` that are known, as stored. A statement of its own, after the insert that
 * found them taken: its snapshot sees a concurrent duplicate that committed while that insert waited.
 */
export async function findIdempotencyKeys(db: Executor, keys: readonly string[]): Promise<Map<string, StoredKey>> {
  if (keys.length === 0) return new Map()
  const rows = await db
    .select()
    .from(idempotencyKeys)
    .where(sql`${idempotencyKeys.key} = any(${sql.param(keys)}::text[])`)
  return new Map(rows.map((row) => [row.key, row]))
}

/** One order by id, or undefined. */
export async function getOrder(db: Executor, id: number): Promise<Order | undefined> {
  const [order] = await db.select().from(orders).where(eq(orders.id, id))
  return order
}

export interface ListOrdersQuery {
  status?: OrderStatus
  /** Only the orders of this orderingKey (orders_ordering_key_idx). */
  orderingKey?: string
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
 * completed orders and for all of them, orders_ordering_key_idx (ordering_key, id) for one key's.
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
        query.orderingKey === undefined ? undefined : eq(orders.orderingKey, query.orderingKey),
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
  /** `due`: what the cancel made due, the next order of its key (for a wake-up). */
  | { outcome: 'cancelled'; order: Order; due: Due }
  | { outcome: 'not_found' }
  /** The order exists but cannot be cancelled now: running, finished, or a worker holds it right now. */
  | { outcome: 'conflict'; order: Order; reason: string }

/** The statuses an order can be cancelled from: every one in which no worker is running it. */
const CANCELLABLE: readonly OrderStatus[] = ['scheduled', 'waiting', 'pending', 'failed']

/**
 * Cancels an order no worker is running: scheduled, waiting behind its key, pending, or failed (a
 * dead letter given up on). An order a worker holds (its batch transaction has it locked) is not
 * waited for: SKIP LOCKED passes it over and the result says it is being processed. Cancelling the
 * head of an orderingKey lets the key's next order go (ordering-keys.ts).
 *
 * Transition: scheduled | waiting | pending | failed -> cancelled.
 */
export async function cancelOrder(db: Db, id: number): Promise<CancelResult> {
  const before = await getOrder(db, id)
  if (before === undefined) return { outcome: 'not_found' }
  const { rows, due } = await changeKeyLines(db, keysOf([before]), cancelStatement.bind(db, { ids: [id] }))
  const [cancelled] = rows
  if (cancelled) return { outcome: 'cancelled', order: decodeOrderValues(cancelled), due }
  const order = (await getOrder(db, id)) ?? before
  const reason = CANCELLABLE.includes(order.status)
    ? 'the order is being processed'
    : `the order is ${order.status}; only ${CANCELLABLE.slice(0, -1).join(', ')} or ${CANCELLABLE.at(-1)} orders can be`
  return { outcome: 'conflict', order, reason }
}

export type SkipResult =
  /** `due`: what the skip made due, the next order of its key (for a wake-up). */
  | { outcome: 'skipped'; order: Order; due: Due }
  | { outcome: 'not_found' }
  | { outcome: 'conflict'; order: Order; reason: string }

/**
 * Lets an orderingKey's later orders past its dead letter: the failed order stays failed (kept, and
 * redrivable), but no longer holds its key, whose next order is promoted. Skipping an order already
 * skipped changes nothing.
 *
 * Transition: failed (its key's head) -> failed (skipped); waiting (the key's next) -> pending | scheduled.
 */
export async function skipOrder(db: Db, id: number): Promise<SkipResult> {
  const before = await getOrder(db, id)
  if (before === undefined) return { outcome: 'not_found' }
  const conflict = (order: Order, reason: string): SkipResult => ({ outcome: 'conflict', order, reason })
  if (before.orderingKey === null) return conflict(before, 'the order has no orderingKey: it holds nothing back')
  const nothingDue: Due = { now: false }
  if (before.status === 'failed' && before.skippedAt !== null)
    return { outcome: 'skipped', order: before, due: nothingDue }
  const { rows, due } = await changeKeyLines(db, keysOf([before]), skipStatement.bind(db, { id }))
  const [skipped] = rows
  if (skipped) return { outcome: 'skipped', order: decodeOrderValues(skipped), due }
  const order = (await getOrder(db, id)) ?? before
  if (order.status === 'failed' && order.skippedAt !== null) return { outcome: 'skipped', order, due: nothingDue }
  return conflict(order, `the order is ${order.status}: only a failed order can be skipped`)
}

export interface RetryQuery {
  /** Only these orders; every failed order when absent. */
  ids?: readonly number[]
  /** The most orders sent back in one call. */
  limit: number
}

/**
 * Redrive: sends failed (dead-lettered) orders back, due now, with their attempts reset so they get
 * a full set of retries: pending, or, for one that was skipped, waiting in its key's line by its id
 * (after the order of its key in progress, before the ones submitted after it). `last_error` is kept
 * as history; lease_token is not reset, so a holder of an old lease can never complete the
 * redriven order. Returns the ids retried, oldest first.
 *
 * Transition: failed -> pending | waiting.
 */
export async function retryOrders(db: Db, query: RetryQuery): Promise<number[]> {
  const { ids: only, limit } = query
  const candidates = await runPrepared(
    db,
    only === undefined ? failedStatement.bind(db, { limit }) : failedAmongStatement.bind(db, { ids: only, limit }),
  )
  if (candidates.length === 0) return []
  const ids = candidates.map(([id]) => Number(id))
  const keys = [...new Set(candidates.flatMap(([, key]) => (key === null ? [] : [key as string])))]
  const { rows } = await changeKeyLines(db, keys, redriveStatement.bind(db, { ids }))
  // Whatever it made due is due now: the caller wakes the workers for the orders redriven.
  return rows.map(([id]) => Number(id)).sort((a, b) => a - b)
}

/**
 * Runs `change` (an UPDATE of some orders) under the locks of their orderingKeys, then promotes the
 * next order of each key left without a head (ordering-keys.ts): one transaction, one write. Without
 * keys, `change` alone. Returns `change`'s rows, and when the orders it promoted are due.
 */
async function changeKeyLines(
  db: Db,
  keys: readonly string[],
  change: BoundQuery,
): Promise<{ rows: unknown[][]; due: Due }> {
  if (keys.length === 0) return { rows: await runPrepared(db, change), due: { now: false } }
  const [, rows = [], promoted = []] = await BatchTransaction.run(db, [
    lockOrderingKeys.bind(db, { keys }),
    change,
    promoteHeadless.bind(db, { keys }),
  ])
  return { rows, due: dueOfPromoted(decodePromoted(promoted)) }
}

/** When promoted orders are due: now (pending), and the earliest of those due later (scheduled). */
function dueOfPromoted(promoted: readonly Promoted[]): Due {
  let earliestLater: Date | undefined
  for (const p of promoted)
    if (p.status === 'scheduled' && (!earliestLater || p.runAt < earliestLater)) earliestLater = p.runAt
  const now = promoted.some((p) => p.status === 'pending')
  return earliestLater === undefined ? { now } : { now, earliestLater }
}

/** Locked with SKIP LOCKED: an order a batch holds is left alone, not waited for, under the key's lock. */
const cancelStatement = new Statement<{ ids: readonly number[] }>(sql`
  update ${orders} set status = 'cancelled', updated_at = statement_timestamp()
  where ${orders.id} in (
    select id from ${orders}
    where id = any(${sql.placeholder('ids')}::bigint[])
      and status in (${sql.raw(CANCELLABLE.map((s) => `'${s}'`).join(', '))})
    for update skip locked)
  returning ${orderColumnList}`)

const skipStatement = new Statement<{ id: number }>(sql`
  update ${orders} set skipped_at = statement_timestamp(), updated_at = statement_timestamp()
  where ${orders.id} = (
    select id from ${orders}
    where id = ${sql.placeholder('id')} and status = 'failed' and skipped_at is null and ordering_key is not null
    for update skip locked)
  returning ${orderColumnList}`)

/** The oldest failed orders, and their keys: what a redrive takes, read before the keys are locked. */
const failedStatement = new Statement<{ limit: number }>(sql`
  select id, ordering_key from ${orders} where status = 'failed'
  order by id limit ${sql.placeholder('limit')}`)

const failedAmongStatement = new Statement<{ ids: readonly number[]; limit: number }>(sql`
  select id, ordering_key from ${orders}
  where status = 'failed' and id = any(${sql.placeholder('ids')}::bigint[])
  order by id limit ${sql.placeholder('limit')}`)

const redriveStatement = new Statement<{ ids: readonly number[] }>(sql`
  update ${orders} set
    status = (case when ordering_key is not null and skipped_at is not null then 'waiting' else 'pending' end),
    skipped_at = null, attempts = 0, run_at = statement_timestamp(), updated_at = statement_timestamp()
  where ${orders.id} in (
    select id from ${orders} where status = 'failed' and id = any(${sql.placeholder('ids')}::bigint[])
    for update skip locked)
  returning ${orders.id}`)
