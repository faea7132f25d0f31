import { type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../client.js'
import { orders } from '../schema.js'
import {
  decodeOrder,
  decodeOutcomes,
  type FailureOutcome,
  type Order,
  type OrderFailure,
  type RetryPolicy,
  retryDelayMs,
} from './shared.js'

// Transaction mode: the claim, the processing and the completion share ONE transaction. The claim
// only locks; the completion (or failure) is the order's one write and counts its attempt, so a
// rollback (a crashed worker's dropped connection included) undoes the attempt with everything else.

/**
 * The claimable rows, in claim order: due orders only. Written once and used by every claim (and by
 * the bench's plain-SQL ceilings), so the predicate the partial index `orders_claim_idx` serves and
 * the claims' WHERE and ORDER BY cannot drift apart. The status literal is statement text, not a
 * parameter: the planner can only match a partial index's predicate against constants.
 */
export const claimable = {
  where: sql`${orders.status} = 'pending'`,
  orderBy: sql`${orders.priority} desc, ${orders.runAt}, ${orders.id}`,
}

/**
 * Locks up to `limit` due orders, highest priority first, then the longest due. Must run inside a
 * transaction; the row locks are the claim. `ids` narrows the claim to those orders (a worker
 * isolating an order that breaks its batch).
 *
 * `FOR UPDATE SKIP LOCKED` makes concurrent claimers take disjoint rows without waiting for each
 * other. The plan is Limit -> LockRows -> Index Scan on `orders_claim_idx`: the scan walks the
 * partial index in claim order, skips rows another transaction holds, and stops after `limit`
 * locked rows. Scheduled orders and leases are not in that index, so a delayed backlog costs the
 * scan nothing.
 *
 * Transition: none (the rows change only when completeOrders/failOrders run in the same transaction).
 */
export async function claimOrders(
  tx: Executor,
  { limit, ids }: { limit: number; ids?: readonly number[] },
): Promise<Order[]> {
  const rows = await tx.execute(claimStatement(limit, ids))
  return rows.map(decodeOrder)
}

/**
 * The claim's statement (exported for EXPLAIN). Written as SQL rather than with the query builder:
 * it runs once per batch, and building the builder's select every time was an eighth of a worker's
 * CPU.
 */
export function claimStatement(limit: number, ids?: readonly number[]): SQL {
  const only = ids === undefined ? sql`` : sql`and ${orders.id} = any(${sql.param(ids)}::bigint[])`
  return sql`
    select * from ${orders}
    where ${claimable.where} ${only}
    order by ${claimable.orderBy}
    limit ${limit}
    for update skip locked`
}

/**
 * Completes claimed orders with one set-based statement, counting the attempt that succeeded.
 * Returns how many it completed.
 *
 * Transition: pending (locked by this transaction) -> completed.
 */
export async function completeOrders(
  tx: Executor,
  { ids, workerId }: { ids: readonly number[]; workerId: string },
): Promise<number> {
  if (ids.length === 0) return 0
  const completed = await tx.execute(sql`
    update ${orders} set
      status = 'completed', attempts = attempts + 1, completed_at = statement_timestamp(),
      completed_by = ${workerId}, updated_at = statement_timestamp()
    where id = any(${sql.param(ids)}::bigint[]) and status = 'pending'`)
  return completed.count
}

/**
 * Records failed attempts with one set-based statement: `attempts` + 1 and the error kept in
 * `last_error`. An order with attempts to spare is retried after `policy`'s backoff (scheduled, or
 * pending when the backoff is zero); one that has used `max_attempts` becomes failed: the dead
 * letters, kept until redriven.
 *
 * Transition: pending (locked by this transaction) -> scheduled | pending (retry) | failed (dead letter).
 */
export async function failOrders(
  tx: Executor,
  failures: readonly OrderFailure[],
  policy: RetryPolicy,
): Promise<FailureOutcome[]> {
  if (failures.length === 0) return []
  const rows = await tx.execute(sql`
    update ${orders} set
      attempts = ${orders.attempts} + 1,
      ${failureTransition(sql`${orders.attempts} + 1`)},
      updated_at = statement_timestamp()
    from ${failureTable(failures, policy)}
    where ${orders.id} = failure.id and ${orders.status} = 'pending'
    returning ${orders.id}, ${orders.status}, ${orders.runAt}`)
  return decodeOutcomes(rows)
}

/**
 * `(id, error, delay_ms)` rows as `failure`, the backoff drawn here per attempt. Shared with lease
 * mode's fenced failure, which adds each lease's token.
 */
export function failureTable(failures: readonly (OrderFailure & { token?: number })[], policy: RetryPolicy): SQL {
  const ids = sql`${sql.param(failures.map((f) => f.id))}::bigint[]`
  const errors = sql`${sql.param(failures.map((f) => f.error))}::text[]`
  const delays = sql`${sql.param(failures.map((f) => retryDelayMs(f.attempt, policy)))}::int[]`
  if (failures.every((f) => f.token === undefined)) {
    return sql`unnest(${ids}, ${errors}, ${delays}) as failure(id, error, delay_ms)`
  }
  const tokens = sql`${sql.param(failures.map((f) => f.token ?? 0))}::int[]`
  return sql`unnest(${ids}, ${errors}, ${delays}, ${tokens}) as failure(id, error, delay_ms, token)`
}

/**
 * The SET clauses of a failed attempt that brings the count to `attempts`: failed when none are
 * left, else a retry due after `failure.delay_ms` (scheduled, or pending at once when it is zero).
 */
export function failureTransition(attempts: SQL): SQL {
  return sql`
    status = (case
      when ${attempts} >= ${orders.maxAttempts} then 'failed'
      when failure.delay_ms = 0 then 'pending'
      else 'scheduled' end)::order_status,
    run_at = statement_timestamp() + failure.delay_ms * interval '1 millisecond',
    last_error = failure.error,
    locked_by = null`
}
