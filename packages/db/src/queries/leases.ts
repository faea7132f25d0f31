import { getTableColumns, sql } from 'drizzle-orm'
import { toSnakeCase } from 'drizzle-orm/casing'
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

// Lease mode, for processors that wait on other services: no transaction stays open while they
// run. The claim is one committed statement that takes a lease (status processing, holder, expiry
// in run_at, attempts + 1); heartbeats extend it; completion happens later in a short transaction,
// fenced so that only the holder of this very attempt can complete it.

/** A leased order and the attempt this lease is (what the fence checks). */
export interface LeasedOrder {
  order: Order
  /** attempts after this claim: 1 on the first try. */
  attempt: number
}

/** Identifies one lease: the order and the attempt the holder was given. */
export interface Lease {
  id: number
  attempt: number
}

export interface LeaseResult {
  leased: LeasedOrder[]
  /** Orders whose lease lapsed with no attempt left (their worker kept dying): now failed. */
  deadLettered: Order[]
}

const LEASE_LAPSED_ERROR = 'lease expired: the worker holding it stopped without completing it'

/**
 * Claims up to `limit` orders in ONE statement: a CTE picks claimable rows with `FOR UPDATE SKIP
 * LOCKED` (pending and due, or processing with a lapsed lease: a dead worker's orders come back
 * through the same claim, with no separate sweep), and `UPDATE ... FROM` it takes the lease. It
 * commits on its own, so no transaction is open while the orders are processed.
 *
 * Attempts are counted here, at claim time: an order that kills its worker every time still uses
 * up an attempt per claim, and once its lease lapses with none left it is dead-lettered instead of
 * being claimed again.
 *
 * The returned orders carry the run_at they were claimable from (for wait times), not the lease's
 * expiry. The CTE is a fence: its LIMIT runs once, however the planner joins it to the update.
 *
 * Transition: pending | processing (lapsed) -> processing (leased) | failed (no attempts left).
 */
export async function leaseOrders(
  db: Executor,
  { limit, workerId, leaseMs }: { limit: number; workerId: string; leaseMs: number },
): Promise<LeaseResult> {
  const exhausted = sql`(claimable.status = 'processing' and claimable.attempts >= claimable.max_attempts)`
  const rows = await db.execute(sql`
    with claimable as materialized (
      select id, status, run_at, attempts, max_attempts from ${orders}
      where status in ('pending', 'processing') and run_at <= now()
      order by priority desc, run_at, id
      limit ${limit}
      for update skip locked
    )
    update ${orders} set
      status = (case when ${exhausted} then 'failed' else 'processing' end)::order_status,
      attempts = case when ${exhausted} then claimable.attempts else claimable.attempts + 1 end,
      locked_by = case when ${exhausted} then null else ${workerId} end,
      run_at = case when ${exhausted} then claimable.run_at else now() + ${leaseMs} * interval '1 millisecond' end,
      last_error = case when ${exhausted} then ${LEASE_LAPSED_ERROR} else ${orders.lastError} end,
      updated_at = now()
    from claimable
    where ${orders.id} = claimable.id
    returning ${returnedColumns}, claimable.run_at as claimable_at`)
  const result: LeaseResult = { leased: [], deadLettered: [] }
  for (const row of rows) {
    const order = decodeOrder(row)
    if (order.status === 'failed') {
      result.deadLettered.push(order)
    } else {
      order.runAt = decodeOrder({ run_at: row.claimable_at }).runAt
      result.leased.push({ order, attempt: order.attempts })
    }
  }
  // Claim order, as the CTE chose it (an UPDATE returns rows in no promised order).
  result.leased.sort((a, b) => b.order.priority - a.order.priority || +a.order.runAt - +b.order.runAt || a.order.id - b.order.id)
  return result
}

/**
 * Heartbeat: pushes the lease expiry of orders this worker still holds to now + `leaseMs`.
 * Returns the ids still held; a missing id was taken over (its lease lapsed first).
 *
 * Transition: processing -> processing (later expiry).
 */
export async function extendLeases(
  db: Executor,
  { leases, workerId, leaseMs }: { leases: readonly Lease[]; workerId: string; leaseMs: number },
): Promise<number[]> {
  if (leases.length === 0) return []
  const rows = await db.execute(sql`
    update ${orders} set run_at = now() + ${leaseMs} * interval '1 millisecond', updated_at = now()
    from ${leaseTable(leases)}
    where ${heldBy(workerId)}
    returning ${orders.id}`)
  return rows.map((row) => Number(row.id))
}

/**
 * The fence, first statement of the completing transaction: locks the orders this worker still
 * holds in these very attempts and returns their ids. A row taken over by another worker (lease
 * lapsed, claimed again) no longer matches holder and attempt, so it is left alone; a matched row
 * stays locked until commit, so nobody can take it over in between. Commit work and completion run
 * only for the returned ids: the holder's database effects happen exactly once even across a
 * lease takeover.
 *
 * Transition: none (locks only).
 */
export async function lockLeasedOrders(
  tx: Executor,
  { leases, workerId }: { leases: readonly Lease[]; workerId: string },
): Promise<number[]> {
  if (leases.length === 0) return []
  const rows = await tx.execute(sql`
    select ${orders.id} from ${orders}, ${leaseTable(leases)}
    where ${heldBy(workerId)}
    for update of ${orders}`)
  return rows.map((row) => Number(row.id))
}

/**
 * Completes leased orders (set-based, fenced): only rows this worker holds in these attempts.
 * Attempts were counted at claim. Returns the ids completed.
 *
 * Transition: processing (held) -> completed.
 */
export async function completeLeasedOrders(
  tx: Executor,
  { leases, workerId }: { leases: readonly Lease[]; workerId: string },
): Promise<number[]> {
  if (leases.length === 0) return []
  const rows = await tx.execute(sql`
    update ${orders} set
      status = 'completed', completed_at = statement_timestamp(), completed_by = ${workerId},
      locked_by = null, updated_at = statement_timestamp()
    from ${leaseTable(leases)}
    where ${heldBy(workerId)}
    returning ${orders.id}`)
  return rows.map((row) => Number(row.id))
}

/**
 * Records failed leased attempts (set-based, fenced). Attempts were counted at claim: an order with
 * attempts to spare goes back to pending after `policy`'s backoff, one without becomes failed.
 *
 * Transition: processing (held) -> pending (retry) | failed (dead letter).
 */
export async function failLeasedOrders(
  tx: Executor,
  { failures, workerId, policy }: { failures: readonly (OrderFailure & Lease)[]; workerId: string; policy: RetryPolicy },
): Promise<FailureOutcome[]> {
  if (failures.length === 0) return []
  const rows = await tx.execute(sql`
    update ${orders} set
      status = ${statusAfterFailure(sql`${orders.attempts}`)},
      run_at = statement_timestamp() + ${retryDelay(sql`${orders.attempts}`, policy)},
      last_error = lease.error,
      locked_by = null,
      updated_at = statement_timestamp()
    from ${leaseTable(failures, failures.map((f) => f.error))}
    where ${heldBy(workerId)}
    returning ${orders.id}, ${orders.status}`)
  return decodeOutcomes(rows)
}

/**
 * Gives back leases that were never started (a worker stopping gracefully): the orders are pending
 * and due at once, and the claim's attempt is taken back, since nothing was attempted.
 *
 * Transition: processing (held) -> pending.
 */
export async function releaseLeasedOrders(
  db: Executor,
  { leases, workerId }: { leases: readonly Lease[]; workerId: string },
): Promise<number[]> {
  if (leases.length === 0) return []
  const rows = await db.execute(sql`
    update ${orders} set
      status = 'pending', attempts = ${orders.attempts} - 1, run_at = now(), locked_by = null, updated_at = now()
    from ${leaseTable(leases)}
    where ${heldBy(workerId)}
    returning ${orders.id}`)
  return rows.map((row) => Number(row.id))
}

/** `(id, attempt[, error])` rows from arrays, joined against orders as `lease`. */
function leaseTable(leases: readonly Lease[], errors?: readonly string[]) {
  const ids = sql`${sql.param(leases.map((l) => l.id))}::bigint[]`
  const attempts = sql`${sql.param(leases.map((l) => l.attempt))}::int[]`
  return errors
    ? sql`unnest(${ids}, ${attempts}, ${sql.param(errors)}::text[]) as lease(id, attempt, error)`
    : sql`unnest(${ids}, ${attempts}) as lease(id, attempt)`
}

/** The fence: the row is this lease's order, still processing, held by `workerId` in that attempt. */
function heldBy(workerId: string) {
  return sql`${orders.id} = lease.id and ${orders.attempts} = lease.attempt
    and ${orders.status} = 'processing' and ${orders.lockedBy} = ${workerId}`
}

// `returning orders.*` would be ambiguous next to the CTE's columns of the same names.
const returnedColumns = sql.raw(
  Object.keys(getTableColumns(orders))
    .map((key) => `"orders"."${toSnakeCase(key)}"`)
    .join(', '),
)
