import { sql } from 'drizzle-orm'
import {
  bigint,
  check,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core'

export const orderStatuses = ['pending', 'processing', 'completed', 'failed', 'cancelled'] as const
export type OrderStatus = (typeof orderStatuses)[number]

export const orderStatus = pgEnum('order_status', orderStatuses)

/** One line of an order. Prices are in the currency's minor unit (cents), never floats. */
export interface LineItem {
  sku: string
  quantity: number
  unitPriceCents: number
}

const timestamptz = () => timestamp({ withTimezone: true, mode: 'date' })

export const orders = pgTable(
  'orders',
  {
    // Numbers, not strings: an int8 identity stays below 2^53 for 285 years at a million orders a second.
    id: bigint({ mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    customerId: text().notNull(),
    currency: text().notNull(),
    items: jsonb().$type<LineItem[]>().notNull(),
    totalCents: bigint({ mode: 'number' }).notNull(),
    status: orderStatus().notNull().default('pending'),
    /** Higher runs first. */
    priority: integer().notNull().default(0),
    /**
     * Not claimable before this instant. For a pending order, when it is due (now, a delay, or a
     * retry's backoff); for a processing order, when its lease lapses: one column, so one index
     * serves both kinds of claimable row.
     */
    runAt: timestamptz().notNull().defaultNow(),
    attempts: integer().notNull().default(0),
    maxAttempts: integer().notNull().default(5),
    lastError: text(),
    createdAt: timestamptz().notNull().defaultNow(),
    updatedAt: timestamptz().notNull().defaultNow(),
    completedAt: timestamptz(),
    /** The worker id that completed the order. */
    completedBy: text(),
    /** Lease mode: the worker holding the order while it is processing. */
    lockedBy: text(),
    /** The client's Idempotency-Key, unique while the order is kept. */
    idempotencyKey: text(),
    /** A hash of the request that carried the key, to tell a retry from a conflicting reuse. */
    requestHash: text(),
  },
  (table) => [
    // The claim query's index: its predicate and column order are the claim's WHERE and ORDER BY,
    // so a claim reads the first claimable rows and stops. Finished rows never enter it, so it stays
    // as small as the backlog (pending orders and leases) however long the history grows.
    index('orders_claim_idx')
      .on(table.priority.desc().nullsFirst(), table.runAt, table.id)
      .where(sql`${table.status} in ('pending', 'processing')`),
    // A unique index, not a read-then-write: two concurrent requests with one key insert one order.
    uniqueIndex('orders_idempotency_key_idx')
      .on(table.idempotencyKey)
      .where(sql`${table.idempotencyKey} is not null`),
    // Listing by status with keyset pagination on id, and counting the small statuses. Completed
    // orders stay out: a completion then writes one index entry fewer, and listing completed
    // orders (most of the table) reads the primary key, whose rows match almost at once.
    index('orders_status_id_idx')
      .on(table.status, table.id)
      .where(sql`${table.status} in ('pending', 'processing', 'failed', 'cancelled')`),
    check('orders_currency_iso4217', sql`${table.currency} ~ '^[A-Z]{3}$'`),
    check('orders_total_nonnegative', sql`${table.totalCents} >= 0`),
    check('orders_items_nonempty', sql`jsonb_typeof(${table.items}) = 'array' and jsonb_array_length(${table.items}) > 0`),
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
