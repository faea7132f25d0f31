import { type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../client.js'
import { orders } from '../schema.js'
import { claimable, failureTable, failureTransition } from './claims.js'
import {
  decodeOrder,
  decodeOutcomes,
  type FailureOutcome,
  type Order,
  type OrderFailure,
  qualifiedOrderColumns,
  type RetryPolicy,
} from './shared.js'

// Lease mode, for processors that wait on other services: no transaction stays open while they
// run. The claim is one committed statement that takes a lease (status processing, holder, expiry
// in run_at, attempts + 1, a new fencing token); heartbeats extend it; completion happens later in
// a short transaction, fenced on the token so that only this very lease can complete the order.
// A lease that lapses is rescued by promoteDueOrders (timers.ts), not by the claim: leases never
// sit in the claim's index.

/** A leased order and the lease it is held under. */
export interface LeasedOrder {
  order: Order
  lease: Lease
}

/** Identifies one lease of one order: what the fence checks. */
export interface Lease {
  id: number
  /** The order's lease_token for this lease: unique among all of the order's leases, ever. */
  token: number
  /** attempts after this claim: 1 on the first try. */
  attempt: number
}

/**
 * Claims up to `limit` due orders in ONE statement: a CTE picks claimable rows with `FOR UPDATE SKIP
 * LOCKED` (the same index walk as transaction mode's claim), and `UPDATE ... FROM` it takes the
 * lease. It commits on its own, so no transaction is open while the orders are processed.
 *
 * Attempts are counted here, at claim time: an order that kills its worker every time still uses
 * up an attempt per claim, and once its lease lapses with none left it is dead-lettered by the
 * rescue instead of being claimed again.
 *
 * The returned orders carry the run_at they became due at (for wait times), not the lease's expiry.
 * The CTE is a fence: its LIMIT runs once, however the planner joins it to the update.
 *
 * Transition: pending -> processing.
 */
export async function leaseOrders(
  db: Executor,
  { limit, workerId, leaseMs }: { limit: number; workerId: string; leaseMs: number },
): Promise<LeasedOrder[]> {
  const rows = await db.execute(sql`
    with claimed as materialized (
      select id, run_at from ${orders}
      where ${claimable.where}
      order by ${claimable.orderBy}
      limit ${limit}
      for update skip locked
    )
    update ${orders} set
      status = 'processing',
      attempts = ${orders.attempts} + 1,
      lease_token = ${orders.leaseToken} + 1,
      locked_by = ${workerId},
      run_at = ${leaseExpiry(leaseMs)},
      updated_at = now()
    from claimed
    where ${orders.id} = claimed.id
    returning ${sql.raw(qualifiedOrderColumns)}, claimed.run_at as due_at`)
  const leased = rows.map((row) => {
    const order = decodeOrder({ ...row, run_at: row.due_at })
    return { order, lease: { id: order.id, token: order.leaseToken, attempt: order.attempts } }
  })
  // Claim order, as the CTE chose it (an UPDATE returns rows in no promised order).
  return leased.sort(
    (a, b) => b.order.priority - a.order.priority || +a.order.runAt - +b.order.runAt || a.order.id - b.order.id,
  )
}

/**
 * Heartbeat: pushes the lease expiry of orders this lease still holds to now + `leaseMs`. Returns
 * the ids still held; a missing id was rescued after its lease lapsed (and maybe leased again).
 * A lease that lapsed but was not rescued yet is still held, and extended: nobody else has it.
 *
 * Transition: processing -> processing (later expiry).
 */
export async function extendLeases(
  db: Executor,
  { leases, leaseMs }: { leases: readonly Lease[]; leaseMs: number },
): Promise<number[]> {
  if (leases.length === 0) return []
  const rows = await db.execute(sql`
    update ${orders} set run_at = ${leaseExpiry(leaseMs)}
    from ${leaseTable(leases)}
    where ${held}
    returning ${orders.id}`)
  return rows.map((row) => Number(row.id))
}

/**
 * The fence, first statement of the completing transaction: locks the orders still held under
 * these leases and returns their ids. A row rescued and leased again has another token, so it is
 * left alone; a matched row stays locked until commit, so nobody can rescue it in between. Commit
 * work and completion run only for the returned ids: the holder's database effects happen exactly
 * once even across a lease takeover, and a redrive (which resets attempts) cannot fool the fence.
 *
 * Transition: none (locks only).
 */
export async function lockLeasedOrders(tx: Executor, { leases }: { leases: readonly Lease[] }): Promise<number[]> {
  if (leases.length === 0) return []
  const rows = await tx.execute(sql`
    select ${orders.id} from ${orders}, ${leaseTable(leases)}
    where ${held}
    for update of ${orders}`)
  return rows.map((row) => Number(row.id))
}

/**
 * Completes leased orders (set-based, fenced). Attempts were counted at claim. Returns the ids completed.
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
    where ${held}
    returning ${orders.id}`)
  return rows.map((row) => Number(row.id))
}

/**
 * Records failed leased attempts (set-based, fenced). Attempts were counted at claim: an order with
 * attempts to spare is retried after `policy`'s backoff, one without becomes failed.
 *
 * Transition: processing (held) -> scheduled | pending (retry) | failed (dead letter).
 */
export async function failLeasedOrders(
  tx: Executor,
  { failures, policy }: { failures: readonly (OrderFailure & { token: number })[]; policy: RetryPolicy },
): Promise<FailureOutcome[]> {
  if (failures.length === 0) return []
  const rows = await tx.execute(sql`
    update ${orders} set ${failureTransition(sql`${orders.attempts}`)}, updated_at = statement_timestamp()
    from ${failureTable(failures, policy)}
    where ${orders.id} = failure.id and ${orders.leaseToken} = failure.token and ${orders.status} = 'processing'
    returning ${orders.id}, ${orders.status}, ${orders.runAt}`)
  return decodeOutcomes(rows)
}

/**
 * Gives back leases that were never started (a worker stopping gracefully): the orders are pending
 * again at the place in the queue they had (`dueAt`), and the claim's attempt is taken back, since
 * nothing was attempted.
 *
 * Transition: processing (held) -> pending.
 */
export async function releaseLeasedOrders(
  db: Executor,
  { leases }: { leases: readonly (Lease & { dueAt: Date })[] },
): Promise<number[]> {
  if (leases.length === 0) return []
  const dueAt = sql`${sql.param(leases.map((l) => l.dueAt.toISOString()))}::text[]::timestamptz[]`
  const rows = await db.execute(sql`
    update ${orders} set
      status = 'pending', attempts = ${orders.attempts} - 1, run_at = lease.due_at, locked_by = null, updated_at = now()
    from ${leaseTable(leases, sql`, ${dueAt}`, sql`, due_at`)}
    where ${held}
    returning ${orders.id}`)
  return rows.map((row) => Number(row.id))
}

/**
 * When a lease taken or extended now lapses. clock_timestamp(), not now(): now() is when the
 * statement arrived, and one that waited on a lock (a migration's, a stalled disk) for longer than
 * the lease would hand out leases already lapsed, rescued and processed twice at once (the
 * fault-injection test caught it).
 */
function leaseExpiry(leaseMs: number): SQL {
  return sql`clock_timestamp() + ${leaseMs} * interval '1 millisecond'`
}

/** `(id, token[, ...])` rows from arrays, joined against orders as `lease`. */
function leaseTable(leases: readonly Lease[], moreArrays: SQL = sql``, moreColumns: SQL = sql``): SQL {
  const ids = sql`${sql.param(leases.map((l) => l.id))}::bigint[]`
  const tokens = sql`${sql.param(leases.map((l) => l.token))}::int[]`
  return sql`unnest(${ids}, ${tokens}${moreArrays}) as lease(id, token${moreColumns})`
}

/** The fence: the row is this lease's order, still processing under this very token. */
const held = sql`${orders.id} = lease.id and ${orders.leaseToken} = lease.token and ${orders.status} = 'processing'`
