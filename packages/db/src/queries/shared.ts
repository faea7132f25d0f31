import { getTableColumns, sql } from 'drizzle-orm'
import { toSnakeCase } from 'drizzle-orm/casing'
import { type OrderRow, type OrderStatus, orders } from '../schema.js'

export type Order = OrderRow

/** How long a failed attempt waits before the next: exponential, capped, jittered. */
export interface RetryPolicy {
  /** The first retry's nominal delay. */
  baseMs: number
  /** No retry waits longer than this. */
  maxMs: number
}

/** An attempt that failed, and why (kept in last_error). */
export interface OrderFailure {
  id: number
  /** Stored as given: the caller bounds it and makes it storable (see the worker's describeError). */
  error: string
  /** The attempt that failed, 1-based: it sets the backoff. */
  attempt: number
}

/** What a failure did to the order: a retry (scheduled, or pending when due at once), or a dead letter. */
export interface FailureOutcome {
  id: number
  status: Extract<OrderStatus, 'scheduled' | 'pending' | 'failed'>
  /** When a retry is due. */
  runAt: Date
}

/**
 * The delay before the retry after failed attempt `attempt` (1-based): min(max, base * 2^(attempt-1)),
 * scaled by a random factor in [0.5, 1) ("equal jitter"): retries of orders that failed together,
 * say when a downstream service went away, spread out instead of returning at once.
 */
export function retryDelayMs(attempt: number, policy: RetryPolicy, random = Math.random()): number {
  const nominal = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(nominal * (0.5 + random / 2))
}

/** The SQL name of an orders column: its key in schema.ts, as the client's snake_case casing maps it. */
export function orderColumnName(key: keyof typeof orders.$inferSelect): string {
  return toSnakeCase(key)
}

const orderColumns = Object.entries(getTableColumns(orders)).map(([key, column]) => ({
  key,
  name: orderColumnName(key as keyof typeof orders.$inferSelect),
  column,
}))

/** Maps a raw row (snake_case, driver values) to an Order, with drizzle's own decoders. */
export function decodeOrder(row: Record<string, unknown>): Order {
  const order: Record<string, unknown> = {}
  for (const { key, name, column } of orderColumns) {
    const value = row[name]
    order[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value)
  }
  return order as Order
}

/**
 * Maps a row of values selected as `orderColumnList` gives them to an Order. Rows as arrays, not
 * objects: postgres.js then builds no object per row whose shape the decoder copies again.
 */
export function decodeOrderValues(values: readonly unknown[], offset = 0): Order {
  const order: Record<string, unknown> = {}
  for (let i = 0; i < orderColumns.length; i++) {
    const { key, column } = orderColumns[i] as (typeof orderColumns)[number]
    const value = values[offset + i]
    order[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value)
  }
  return order as Order
}

/** Failure rows as `[id, status, run_at]` values. */
export function decodeOutcomeValues(rows: readonly unknown[][]): FailureOutcome[] {
  return rows.map(([id, status, runAt]) => ({
    id: Number(id),
    status: status as FailureOutcome['status'],
    runAt: new Date(runAt as string),
  }))
}

/** How many values orderColumnList selects: what a statement selects after them starts here. */
export const orderColumnCount = orderColumns.length

/**
 * `"orders"."id", "orders"."customer_id", ...`: every column in schema order, qualified (a RETURNING
 * beside a CTE with columns of the same names would be ambiguous), as decodeOrderValues reads them.
 */
export const orderColumnList = sql.raw(orderColumns.map(({ name }) => `"orders"."${name}"`).join(', '))
