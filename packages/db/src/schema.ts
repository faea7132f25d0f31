import { type SQL, sql } from 'drizzle-orm'
import {
  bigint,
  check,
  index,
  integer,
  jsonb,
  type PgColumn,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core'

/**
 * scheduled: waiting for its runAt (a delay, or a retry's backoff); waiting: behind an earlier
 * order of its orderingKey; pending: due, waiting for a worker; processing: leased by a lease-mode
 * worker; then one of the three final states.
 */
export const orderStatuses = [
  'scheduled',
  'waiting',
  'pending',
  'processing',
  'completed',
  'failed',
  'cancelled',
] as const
export type OrderStatus = (typeof orderStatuses)[number]

/** One line of an order. Prices are in the currency's minor unit (cents), never floats. */
export interface LineItem {
  sku: string
  quantity: number
  unitPriceCents: number
}

const timestamptz = () => timestamp({ withTimezone: true, mode: 'date' })

/**
 * Whether an order of a key is its head: the one order of the key that may be due, running, or
 * blocking it (a dead letter not skipped). Written once, for the unique index and every statement
 * that looks a head up, so the planner matches them to that index.
 */
export function keyHeadStatus(status: PgColumn | SQL, skippedAt: PgColumn | SQL): SQL {
  return sql`(${status} in ('scheduled', 'pending', 'processing') or (${status} = 'failed' and ${skippedAt} is null))`
}

export const orders = pgTable(
  'orders',
  {
    // Numbers, not strings: an int8 identity stays below 2^53 for 285 years at a million orders a second.
    id: bigint({ mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    customerId: text().notNull(),
    currency: text().notNull(),
    items: jsonb().$type<LineItem[]>().notNull(),
    totalCents: bigint({ mode: 'number' }).notNull(),
    // Text with a CHECK, not an enum type: every object lives in the queue's own schema, found through
    // search_path, and a type would be one more name to collide with (many databases have an
    // order_status), and one that cannot gain a value inside a migration's transaction.
    status: text({ enum: orderStatuses }).notNull().default('pending'),
    /** Higher runs first. */
    priority: integer().notNull().default(0),
    /**
     * For a scheduled order, when it becomes due; for a pending one, when it became due (its wait
     * is measured from here); for a processing one, when its lease lapses. One column, so one index
     * (orders_timers_idx) finds both the scheduled orders that came due and the leases that lapsed.
     */
    runAt: timestamptz().notNull().defaultNow(),
    attempts: integer().notNull().default(0),
    maxAttempts: integer().notNull().default(5),
    lastError: text(),
    /**
     * Orders sharing a key run one at a time, in id order, across the fleet. Only the key's head (its
     * oldest order not finished) is ever scheduled, pending, processing or failed; the later ones
     * are `waiting`, out of every index a claim or promotion reads, until settling the head promotes
     * the next (queries/ordering-keys.ts).
     */
    orderingKey: text(),
    /**
     * Set when a failed order was skipped: it stays a dead letter, but no longer holds back the later
     * orders of its key.
     */
    skippedAt: timestamptz(),
    /** W3C trace context of the request that submitted it (tracing on): its processing joins that trace. */
    traceparent: text(),
    createdAt: timestamptz().notNull().defaultNow(),
    updatedAt: timestamptz().notNull().defaultNow(),
    completedAt: timestamptz(),
    /** The worker id that completed the order. */
    completedBy: text(),
    /** Lease mode: the worker holding the order while it is processing. */
    lockedBy: text(),
    /**
     * Lease mode's fencing token: one more on every lease, never reset (a redrive resets attempts,
     * not this), so a holder whose lease lapsed can never match a later lease of the same order.
     */
    leaseToken: integer().notNull().default(0),
  },
  (table) => [
    // The claim's index: its predicate and column order are the claim's WHERE and ORDER BY, so a
    // claim reads the first due orders and stops. Only due orders are in it: scheduled orders and
    // leases wait in orders_timers_idx, finished ones in neither, so neither a delayed backlog nor
    // the history costs a claim anything.
    index('orders_claim_idx')
      .on(table.priority.desc().nullsFirst(), table.runAt, table.id)
      .where(sql`${table.status} = 'pending'`),
    // What comes due by time: scheduled orders (promoted to pending) and leases (a lapsed one is
    // rescued), both by run_at, so promotion reads only what is due and stops.
    index('orders_timers_idx').on(table.runAt).where(sql`${table.status} in ('scheduled', 'processing')`),
    // Listing by status with keyset pagination on id, and counting the small statuses. Completed
    // orders stay out: a completion then writes one index entry fewer, and listing completed
    // orders (most of the table) reads the primary key, whose rows match almost at once.
    index('orders_status_id_idx').on(table.status, table.id).where(sql`${table.status} <> 'completed'`),
    // At most one head per key: the database itself refuses a second order of a key running, due or
    // blocking at once, whatever a bug in the code above it would do.
    uniqueIndex('orders_key_head_idx')
      .on(table.orderingKey)
      .where(sql`${table.orderingKey} is not null and ${keyHeadStatus(table.status, table.skippedAt)}`),
    // The next order of a key, found by settling its head: only waiting orders, so the key's history
    // is never read.
    index('orders_key_waiting_idx').on(table.orderingKey, table.id).where(sql`${table.status} = 'waiting'`),
    // Listing one key's orders (GET /orders?orderingKey=), keyset on id.
    index('orders_ordering_key_idx').on(table.orderingKey, table.id).where(sql`${table.orderingKey} is not null`),
    check('orders_waiting_has_key', sql`${table.status} <> 'waiting' or ${table.orderingKey} is not null`),
    check('orders_status_known', sql`${table.status} in (${sql.raw(orderStatuses.map((s) => `'${s}'`).join(', '))})`),
    check('orders_currency_iso4217', sql`${table.currency} ~ '^[A-Z]{3}$'`),
    check('orders_total_nonnegative', sql`${table.totalCents} >= 0`),
    check(
      'orders_items_nonempty',
      sql`jsonb_typeof(${table.items}) = 'array' and jsonb_array_length(${table.items}) > 0`,
    ),
    check('orders_attempts_nonnegative', sql`${table.attempts} >= 0`),
    check('orders_max_attempts_positive', sql`${table.maxAttempts} >= 1`),
  ],
)

export type OrderRow = typeof orders.$inferSelect

/** The worker fleet: each worker registers at start and heartbeats; a silent one is gone. */
export const workers = pgTable('workers', {
  id: text().primaryKey(),
  host: text().notNull(),
  pid: integer().notNull(),
  mode: text().notNull(),
  startedAt: timestamptz().notNull().defaultNow(),
  lastSeenAt: timestamptz().notNull().defaultNow(),
  /** Set by a graceful stop; a worker that died just stops heartbeating. */
  stoppedAt: timestamptz(),
  /** Orders completed and failed attempts since the worker started. */
  processed: bigint({ mode: 'number' }).notNull().default(0),
  failed: bigint({ mode: 'number' }).notNull().default(0),
  /** Its WORKER_HEARTBEAT_MS: whether it is gone is judged by its own interval, not a reader's guess. */
  heartbeatMs: integer().notNull().default(5000),
})

/**
 * Completions and failures per worker per 5-second bucket, written with each heartbeat rather than
 * per order, so throughput costs the hot path nothing and stays cheap to read however large the
 * orders table grows.
 */
export const orderThroughput = pgTable(
  'order_throughput',
  {
    bucket: timestamptz().notNull(),
    workerId: text().notNull(),
    completed: integer().notNull().default(0),
    failed: integer().notNull().default(0),
  },
  (table) => [primaryKey({ columns: [table.bucket, table.workerId] })],
)

export type WorkerRow = typeof workers.$inferSelect

/**
 * One row per orderingKey in use, and nothing in it: its row lock is what serializes the changes to
 * a key's line (a submission, the head settling, a cancel, skip or redrive), so that the decision
 * which order is the head is always taken on what the last change committed. Retention deletes the
 * rows of keys with nothing left in line.
 */
export const orderingKeys = pgTable('ordering_keys', {
  key: text().primaryKey(),
})

/**
 * Idempotency-Keys, kept apart from the orders they stored so that a key outlives its orders:
 * retention may delete a completed order, and its key still answers a late retry for the
 * idempotency window (`IDEMPOTENCY_KEY_DAYS`) instead of storing the order again.
 */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    key: text().primaryKey(),
    /** A hash of the request that carried the key, to tell a retry from a conflicting reuse. */
    requestHash: text().notNull(),
    /** What the request stored: one order for POST /orders, the batch for POST /orders/batch. */
    orderIds: bigint({ mode: 'number' }).array().notNull(),
    createdAt: timestamptz().notNull().defaultNow(),
  },
  (table) => [index('idempotency_keys_created_at_idx').on(table.createdAt)],
)
