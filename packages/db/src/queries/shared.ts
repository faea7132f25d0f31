import { getTableColumns, type SQL, sql } from 'drizzle-orm'
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
  error: string
}

/** What a failure did to the order: back to pending for a retry, or failed (dead-lettered). */
export interface FailureOutcome {
  id: number
  status: Extract<OrderStatus, 'pending' | 'failed'>
}

/**
 * The delay before retry number `attempt` (1-based), as an interval: min(max, base * 2^(attempt-1)),
 * then scaled by a random factor in [0.5, 1) ("equal jitter"): retries of orders that failed
 * together, say when a downstream service went away, spread out instead of returning at once.
 */
export function retryDelay(attempt: SQL, policy: RetryPolicy): SQL {
  return sql`(least(${policy.maxMs}::float8, ${policy.baseMs}::float8 * power(2, ${attempt} - 1))
    * (0.5 + random() / 2) * interval '1 millisecond')`
}

/** The status after a failed attempt that brings the count to `attempts`. */
export function statusAfterFailure(attempts: SQL): SQL {
  return sql`(case when ${attempts} >= ${orders.maxAttempts} then 'failed' else 'pending' end)::order_status`
}

const orderColumns = Object.entries(getTableColumns(orders)).map(([key, column]) => ({
  key,
  name: toSnakeCase(key),
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

/** Failure rows as `returning id, status` gives them. */
export function decodeOutcomes(rows: readonly Record<string, unknown>[]): FailureOutcome[] {
  return rows.map((row) => ({ id: Number(row.id), status: row.status as FailureOutcome['status'] }))
}
