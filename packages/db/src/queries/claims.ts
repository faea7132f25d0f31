import { type SQL, sql } from 'drizzle-orm'
import { PgDialect } from 'drizzle-orm/pg-core'
import type { Db } from '../client.js'
import { orders } from '../schema.js'
import { type BoundQuery, Statement } from '../statement.js'
import { BatchTransaction } from '../transaction.js'
import { decodePromoted, lockOrderingKeys, type Promoted, promoteNextOf } from './ordering-keys.js'
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

/** `claimable` as plain SQL text, for what does not build drizzle statements (the bench's ceilings). */
export const claimableText = (() => {
  const dialect = new PgDialect({ casing: 'snake_case' })
  return { where: dialect.sqlToQuery(claimable.where).sql, orderBy: dialect.sqlToQuery(claimable.orderBy).sql }
})()

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
export async function claimBatch(
  db: Db,
  { limit, ids }: { limit: number; ids?: readonly number[] },
): Promise<ClaimedBatch> {
  const query = ids === undefined ? claimStatement.bind(db, { limit }) : claimOnlyStatement.bind(db, { limit, ids })
  const { tx, rows } = await BatchTransaction.begin(db, query)
  return { tx, orders: rows.map((row) => decodeOrderValues(row)) }
}

/**
 * The claim's statement (exported for EXPLAIN). Written as SQL rather than with the query builder,
 * compiled once and prepared, so neither the worker nor the server builds or plans it per batch.
 */
export const claimStatement = new Statement<{ limit: number }>(claimQuery(sql``))

/** The claim narrowed to some orders (`ids`). */
const claimOnlyStatement = new Statement<{ limit: number; ids: readonly number[] }>(
  claimQuery(sql`and ${orders.id} = any(${sql.placeholder('ids')}::bigint[])`),
)

function claimQuery(only: SQL): SQL {
  return sql`
    select ${orderColumnList} from ${orders}
    where ${claimable.where} ${only}
    order by ${claimable.orderBy}
    limit ${sql.placeholder('limit')}
    for update skip locked`
}

/** What settling a batch of orders did beyond completing them. */
export interface Settlement {
  /** The failed attempts: each retried (scheduled or pending) or dead-lettered. */
  failed: FailureOutcome[]
  /** The next orders of the keys whose head completed, now their keys' heads. */
  promoted: Promoted[]
}

export interface BatchSettlement {
  completed: readonly number[]
  /**
   * The orderingKeys of the completed orders (keysOf): their next orders are promoted. Leaving out
   * a key leaves the orders behind it waiting.
   */
  completedKeys?: readonly string[]
  failures: readonly OrderFailure[]
  workerId: string
  policy: RetryPolicy
}

/**
 * Settles a claimed batch and commits: the completed orders and the failed attempts in ONE
 * statement, sent in the same write as COMMIT. Every settled order's attempt is counted. A failed
 * order with attempts to spare is retried after `policy`'s backoff (scheduled, or pending when the
 * backoff is zero); one that has used `max_attempts` becomes failed: the dead letters, kept until
 * redriven. Orders of the batch in neither list are released unattempted by the commit. A completed
 * order with an orderingKey makes the next order of its key the head (ordering-keys.ts): the keys
 * are locked first, in the same write.
 *
 * Transition: pending (locked by the batch) -> completed | scheduled | pending | failed;
 * waiting (next of a completed key) -> pending | scheduled.
 */
export async function settleBatch(tx: BatchTransaction, settlement: BatchSettlement): Promise<Settlement> {
  return decodeSettlement(await tx.commit(...settlementQueries(tx, settlement)))
}

/**
 * settleBatch, and the next batch claimed in the same write (COMMIT, BEGIN and the claim follow the
 * settlement on the same connection): a worker whose batches come back full pays one round trip
 * per batch instead of two. Throws as settleBatch does; `next` is undefined if only the claim
 * failed (the settlement committed all the same).
 *
 * Transition: as settleBatch, then as claimBatch.
 */
export async function settleBatchAndClaimNext(
  tx: BatchTransaction,
  settlement: BatchSettlement,
  { limit }: { limit: number },
): Promise<Settlement & { next?: ClaimedBatch }> {
  const { rows, next } = await tx.commitAndBegin(
    settlementQueries(tx, settlement),
    claimStatement.bind(tx.db, { limit }),
  )
  return {
    ...decodeSettlement(rows),
    next: next && { tx: next.tx, orders: next.rows.map((row) => decodeOrderValues(row)) },
  }
}

/** The failed attempts as the arrays `failureTable` reads: the backoff is drawn here, per attempt. */
export interface FailureValues extends Record<string, unknown> {
  failureIds: number[]
  failureErrors: string[]
  failureDelays: number[]
  failureTokens: number[]
}

export function failureValues(
  failures: readonly (OrderFailure & { token?: number })[],
  policy: RetryPolicy,
): FailureValues {
  return {
    failureIds: failures.map((f) => f.id),
    failureErrors: failures.map((f) => f.error),
    failureDelays: failures.map((f) => retryDelayMs(f.attempt, policy)),
    failureTokens: failures.map((f) => f.token ?? 0),
  }
}

/**
 * `(id, error, delay_ms, token)` rows as `failure`, from failureValues' arrays. Shared with lease
 * mode's fenced settlement, which fills in each lease's token. The arrays are always there, empty
 * when nothing failed, so the statement's text (and its prepared plan) never changes.
 */
export const failureTable = sql`unnest(
  ${sql.placeholder('failureIds')}::bigint[], ${sql.placeholder('failureErrors')}::text[],
  ${sql.placeholder('failureDelays')}::int[], ${sql.placeholder('failureTokens')}::int[]) as failure(id, error, delay_ms, token)`

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

type SettleValues = { completed: readonly number[]; workerId: string } & FailureValues

/** The batch's settlement; `keyed`: with the promotion of the completed heads' next orders. */
function settleQuery(keyed: boolean): SQL {
  return sql`
    with completed as (
      update ${orders} set
        status = 'completed', attempts = ${orders.attempts} + 1, completed_at = statement_timestamp(),
        completed_by = ${sql.placeholder('workerId')}, updated_at = statement_timestamp()
      where ${orders.id} = any(${sql.placeholder('completed')}::bigint[]) and ${orders.status} = 'pending'
      ${keyed ? sql`returning ${orders.orderingKey}` : sql``}
    ),
    failed as (
      update ${orders} set
        attempts = ${orders.attempts} + 1,
        ${failureTransition(sql`${orders.attempts} + 1`)},
        updated_at = statement_timestamp()
      from ${failureTable}
      where ${orders.id} = failure.id and ${orders.status} = 'pending'
      returning ${orders.id}, ${orders.status}, ${orders.runAt}
    )${
      keyed
        ? sql`,
    promoted as (${promoteNextOf(sql`completed`)})
    select id, status, run_at, false from failed
    union all
    select id, status, run_at, true from promoted`
        : sql`
    select * from failed`
    }`
}

const settleStatement = new Statement<SettleValues>(settleQuery(false))
const settleKeyedStatement = new Statement<SettleValues>(settleQuery(true))

/** The settlement, after locking the completed orders' keys when there are any. */
function settlementQueries(
  tx: BatchTransaction,
  { completed, completedKeys = [], failures, workerId, policy }: BatchSettlement,
): [...BoundQuery[], BoundQuery] {
  const values = { completed, workerId, ...failureValues(failures, policy) }
  if (completedKeys.length === 0) return [settleStatement.bind(tx.db, values)]
  return [lockOrderingKeys.bind(tx.db, { keys: completedKeys }), settleKeyedStatement.bind(tx.db, values)]
}

/** Rows of `(id, status, run_at[, promoted])`: failed attempts, and orders promoted when flagged. */
export function decodeSettlement(rows: readonly unknown[][]): Settlement {
  const failed: unknown[][] = []
  const promoted: unknown[][] = []
  for (const row of rows) (row[3] === true ? promoted : failed).push(row)
  return { failed: decodeOutcomeValues(failed), promoted: decodePromoted(promoted) }
}
