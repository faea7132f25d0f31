import { type SQL, sql } from 'drizzle-orm'
import type { Db } from '../client.js'
import { orders } from '../schema.js'
import { BatchTransaction } from '../transaction.js'
import {
  decodeOrderValues,
  decodeOutcomeValues,
  type FailureOutcome,
  type Order,
  type OrderFailure,
  orderColumnList,
  type RetryPolicy,
  retryDelayMs,
} from './shared.js'

// Transaction mode: the claim, the processing and the settlement share ONE transaction. The claim
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

/** A claimed batch: its orders, locked by its open transaction until settleBatch or rollback. */
export interface ClaimedBatch {
  tx: BatchTransaction
  orders: Order[]
}

/**
 * Opens a transaction and locks up to `limit` due orders in it, highest priority first, then the
 * longest due: BEGIN and the claim go to the server in one write. `ids` narrows the claim to those
 * orders (a worker isolating an order that breaks its batch). The row locks are the claim; settle
 * with settleBatch, or roll back.
 *
 * `FOR UPDATE SKIP LOCKED` makes concurrent claimers take disjoint rows without waiting for each
 * other. The plan is Limit -> LockRows -> Index Scan on `orders_claim_idx`: the scan walks the
 * partial index in claim order, skips rows another transaction holds, and stops after `limit`
 * locked rows. Scheduled orders and leases are not in that index, so a delayed backlog costs the
 * scan nothing.
 *
 * Transition: none (the rows change only when settleBatch commits).
 */
export async function claimBatch(db: Db, { limit, ids }: { limit: number; ids?: readonly number[] }): Promise<ClaimedBatch> {
  const { tx, rows } = await BatchTransaction.begin(db, claimStatement(limit, ids))
  return { tx, orders: rows.map((row) => decodeOrderValues(row)) }
}

/**
 * The claim's statement (exported for EXPLAIN). Written as SQL rather than with the query builder:
 * it runs once per batch, and building the builder's select every time was an eighth of a worker's
 * CPU. It is prepared, so the server plans it once per connection.
 */
export function claimStatement(limit: number, ids?: readonly number[]): SQL {
  const only = ids === undefined ? sql`` : sql`and ${orders.id} = any(${sql.param(ids)}::bigint[])`
  return sql`
    select ${orderColumnList} from ${orders}
    where ${claimable.where} ${only}
    order by ${claimable.orderBy}
    limit ${limit}
    for update skip locked`
}

/**
 * Settles a claimed batch and commits: the completed orders and the failed attempts in ONE
 * statement, sent in the same write as COMMIT. Every settled order's attempt is counted. A failed
 * order with attempts to spare is retried after `policy`'s backoff (scheduled, or pending when the
 * backoff is zero); one that has used `max_attempts` becomes failed: the dead letters, kept until
 * redriven. Orders of the batch in neither list are released unattempted by the commit.
 *
 * Transition: pending (locked by the batch) -> completed | scheduled | pending | failed.
 */
export async function settleBatch(
  tx: BatchTransaction,
  { completed, failures, workerId, policy }: {
    completed: readonly number[]
    failures: readonly OrderFailure[]
    workerId: string
    policy: RetryPolicy
  },
): Promise<FailureOutcome[]> {
  const rows = await tx.commit(sql`
    with completed as (
      update ${orders} set
        status = 'completed', attempts = ${orders.attempts} + 1, completed_at = statement_timestamp(),
        completed_by = ${workerId}, updated_at = statement_timestamp()
      where ${orders.id} = any(${sql.param(completed)}::bigint[]) and ${orders.status} = 'pending'
    ),
    failed as (
      update ${orders} set
        attempts = ${orders.attempts} + 1,
        ${failureTransition(sql`${orders.attempts} + 1`)},
        updated_at = statement_timestamp()
      from ${failureTable(failures, policy)}
      where ${orders.id} = failure.id and ${orders.status} = 'pending'
      returning ${orders.id}, ${orders.status}, ${orders.runAt}
    )
    select * from failed`)
  return decodeOutcomeValues(rows)
}

/**
 * `(id, error, delay_ms[, token])` rows as `failure`, the backoff drawn here per attempt. Shared
 * with lease mode's fenced settlement, which adds each lease's token. The arrays are always there,
 * empty when nothing failed, so the statement's text (and its prepared plan) never changes.
 */
export function failureTable(failures: readonly (OrderFailure & { token?: number })[], policy: RetryPolicy): SQL {
  const ids = sql`${sql.param(failures.map((f) => f.id))}::bigint[]`
  const errors = sql`${sql.param(failures.map((f) => f.error))}::text[]`
  const delays = sql`${sql.param(failures.map((f) => retryDelayMs(f.attempt, policy)))}::int[]`
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
      else 'scheduled' end),
    run_at = statement_timestamp() + failure.delay_ms * interval '1 millisecond',
    last_error = failure.error,
    locked_by = null`
}
