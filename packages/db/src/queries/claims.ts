import { sql } from 'drizzle-orm'
import type { Executor } from '../client.js'
import { orders } from '../schema.js'
import {
  decodeOrder,
  decodeOutcomes,
  type FailureOutcome,
  type Order,
  type OrderFailure,
  type RetryPolicy,
  retryDelay,
  statusAfterFailure,
} from './shared.js'

// Transaction mode: the claim, the processing and the completion share ONE transaction. The claim
// only locks; the completion (or failure) is the order's one write and counts its attempt, so a
// rollback (a crashed worker's dropped connection included) undoes the attempt with everything else.

/**
 * Locks up to `limit` claimable orders, highest priority first, then oldest. Must run inside a
 * transaction; the row locks are the claim. Claimable: pending and due, or processing with a
 * lapsed lease (left by a lease-mode worker that died).
 *
 * `FOR UPDATE SKIP LOCKED` makes concurrent claimers take disjoint rows without waiting for each
 * other. The plan is Limit -> LockRows -> Index Scan on `orders_claim_idx`: the scan walks the
 * partial index in claim order, skips rows another transaction holds, and stops after `limit`
 * locked rows, so the limit is applied once, after skipping.
 *
 * Transition: none (the rows change only when completeOrders/failOrders run in the same transaction).
 */
export async function claimOrders(tx: Executor, { limit }: { limit: number }): Promise<Order[]> {
  const rows = await tx.execute(claimStatement(limit))
  return rows.map(decodeOrder)
}

/**
 * The claim's statement (exported for EXPLAIN). Written as SQL rather than with the query builder:
 * it runs once per batch, and building the builder's 18-column select every time was an eighth of
 * a worker's CPU. The status literals are statement text, not parameters: the planner can only
 * match the partial index's predicate against constants.
 */
export function claimStatement(limit: number) {
  return sql`
    select * from ${orders}
    where status in ('pending', 'processing') and run_at <= now()
    order by priority desc, run_at, id
    limit ${limit}
    for update skip locked`
}

/**
 * Completes claimed orders with one set-based statement, counting the attempt that succeeded.
 * Returns how many it completed.
 *
 * Transition: pending|processing (locked by this transaction) -> completed.
 */
export async function completeOrders(
  tx: Executor,
  { ids, workerId }: { ids: readonly number[]; workerId: string },
): Promise<number> {
  if (ids.length === 0) return 0
  const completed = await tx.execute(sql`
    update ${orders} set
      status = 'completed', attempts = attempts + 1, completed_at = statement_timestamp(),
      completed_by = ${workerId}, locked_by = null, updated_at = statement_timestamp()
    where id = any(${sql.param(ids)}::bigint[]) and status in ('pending', 'processing')`)
  return completed.count
}

/**
 * Records failed attempts with one set-based statement: `attempts` + 1 and the error kept in
 * `last_error`. An order with attempts to spare goes back to pending, due after `policy`'s backoff;
 * one that has used `max_attempts` becomes failed: the dead letters, kept until redriven.
 *
 * Transition: pending|processing (locked by this transaction) -> pending (retry) | failed (dead letter).
 */
export async function failOrders(
  tx: Executor,
  failures: readonly OrderFailure[],
  policy: RetryPolicy,
): Promise<FailureOutcome[]> {
  if (failures.length === 0) return []
  const attempts = sql`(${orders.attempts} + 1)`
  const rows = await tx.execute(sql`
    update ${orders} set
      attempts = ${attempts},
      status = ${statusAfterFailure(attempts)},
      run_at = statement_timestamp() + ${retryDelay(attempts, policy)},
      last_error = failure.error,
      locked_by = null,
      updated_at = statement_timestamp()
    from unnest(
      ${sql.param(failures.map((f) => f.id))}::bigint[],
      ${sql.param(failures.map((f) => f.error))}::text[]
    ) as failure(id, error)
    where ${orders.id} = failure.id and ${orders.status} in ('pending', 'processing')
    returning ${orders.id}, ${orders.status}`)
  return decodeOutcomes(rows)
}
