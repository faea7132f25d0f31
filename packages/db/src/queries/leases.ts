import { type SQL, sql } from 'drizzle-orm'
import type { Db } from '../client.js'
import { orders } from '../schema.js'
import type { BoundQuery } from '../statement.js'
import { Statement } from '../statement.js'
import { BatchTransaction, runPrepared } from '../transaction.js'
import {
  claimable,
  decodeSettlement,
  type FailureValues,
  failureTable,
  failureTransition,
  failureValues,
  type Settlement,
} from './claims.js'
import { lockOrderingKeys, promoteNextOf } from './ordering-keys.js'
import {
  decodeOrderValues,
  type Order,
  type OrderFailure,
  orderColumnCount,
  orderColumnList,
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
  db: Db,
  { limit, workerId, leaseMs }: { limit: number; workerId: string; leaseMs: number },
): Promise<LeasedOrder[]> {
  const rows = await runPrepared(db, leaseStatement.bind(db, { limit, workerId, leaseMs }))
  const dueAt = orderColumnCount
  const leased = rows.map((row) => {
    const order = decodeOrderValues(row)
    order.runAt = new Date(row[dueAt] as string)
    return { order, lease: { id: order.id, token: order.leaseToken, attempt: order.attempts } }
  })
  // Claim order, as the CTE chose it (an UPDATE returns rows in no promised order).
  return leased.sort(
    (a, b) => b.order.priority - a.order.priority || +a.order.runAt - +b.order.runAt || a.order.id - b.order.id,
  )
}

/**
 * Heartbeat: pushes the lease expiry of orders still held under these leases to now + `leaseMs`.
 * Returns the ids still held; a missing id was rescued after its lease lapsed (and maybe leased
 * again). A lease that lapsed but was not rescued yet is still held, and extended: nobody else has it.
 *
 * Transition: processing -> processing (later expiry).
 */
export async function extendLeases(
  db: Db,
  { leases, leaseMs }: { leases: readonly Lease[]; leaseMs: number },
): Promise<number[]> {
  if (leases.length === 0) return []
  const rows = await runPrepared(db, extendStatement.bind(db, { ...leaseValues(leases), leaseMs }))
  return rows.map(([id]) => Number(id))
}

/** What settling leases did: the orders completed, the failed attempts recorded, the next orders of keys promoted. */
export interface LeaseSettlement extends Settlement {
  completed: number[]
}

export interface LeaseSettlementInput {
  /** Leases whose attempt succeeded. */
  succeeded: readonly Lease[]
  /** The orderingKeys of their orders (keysOf): the next order of each is promoted. */
  succeededKeys?: readonly string[]
  /** Leases whose attempt failed, and why. */
  failures: readonly (OrderFailure & Lease)[]
  workerId: string
  policy: RetryPolicy
}

/**
 * Settles leased orders in ONE statement, committed on its own: completes the succeeded ones and
 * records the failed attempts (retry after `policy`'s backoff, or dead letter; attempts were counted
 * at claim). Fenced: only rows still held under each lease's token change, so a worker whose lease
 * lapsed completes nothing it lost. For orders without CommitWork: nothing else needs to commit with
 * them, so no transaction is opened.
 *
 * Transition: processing (held) -> completed | scheduled | pending | failed.
 */
export async function settleLeasedOrders(db: Db, input: LeaseSettlementInput): Promise<LeaseSettlement> {
  const queries = settlementQueries(db, input)
  // Keyed: the keys' locks and the settlement, one transaction; else the statement commits alone.
  const rows = queries.length === 1 ? await runPrepared(db, queries[0]) : (await BatchTransaction.run(db, queries))[1]
  return decodeLeaseSettlement(rows ?? [])
}

/** Leased orders locked for their CommitWork, in a transaction settleLeasedBatch commits. */
export interface LockedLeases {
  tx: BatchTransaction
  /** The ids still held under their leases, now locked: only these may be settled. */
  held: Set<number>
}

/**
 * The fence for orders with CommitWork: opens a transaction and locks the orders still held under
 * these leases (BEGIN and the lock in one write). A row rescued and leased again has another token,
 * so it is left alone; a locked row cannot be rescued until commit. CommitWork then runs, and
 * settleLeasedBatch commits it with the settlement: the holder's database effects happen exactly
 * once even across a lease takeover, and a redrive (which resets attempts) cannot fool the fence.
 *
 * Transition: none (locks only).
 */
export async function lockLeasedOrders(db: Db, { leases }: { leases: readonly Lease[] }): Promise<LockedLeases> {
  const { tx, rows } = await BatchTransaction.begin(db, lockStatement.bind(db, leaseValues(leases)))
  return { tx, held: new Set(rows.map(([id]) => Number(id))) }
}

/** settleLeasedOrders inside lockLeasedOrders' transaction, sent with its COMMIT. */
export async function settleLeasedBatch(tx: BatchTransaction, input: LeaseSettlementInput): Promise<LeaseSettlement> {
  return decodeLeaseSettlement(await tx.commit(...settlementQueries(tx.db, input)))
}

/** The settlement, after locking the completed orders' keys when there are any. */
function settlementQueries(
  db: Db,
  { succeeded, succeededKeys = [], failures, workerId, policy }: LeaseSettlementInput,
): [BoundQuery] | [BoundQuery, BoundQuery] {
  const values = { ...leaseValues(succeeded), workerId, ...failureValues(failures, policy) }
  if (succeededKeys.length === 0) return [settlementStatement.bind(db, values)]
  return [lockOrderingKeys.bind(db, { keys: succeededKeys }), keyedSettlementStatement.bind(db, values)]
}

/** Rows of `(id, 'completed', null)` for each completion, then settleBatch's rows. */
function decodeLeaseSettlement(rows: readonly unknown[][]): LeaseSettlement {
  const completed: number[] = []
  const others: unknown[][] = []
  for (const row of rows) {
    if (row[1] === 'completed') completed.push(Number(row[0]))
    else others.push(row)
  }
  return { completed, ...decodeSettlement(others) }
}

/**
 * Gives back leases that were never started (a worker stopping gracefully): the orders are pending
 * again at the place in the queue they had (`dueAt`), and the claim's attempt is taken back, since
 * nothing was attempted.
 *
 * Transition: processing (held) -> pending.
 */
export async function releaseLeasedOrders(
  db: Db,
  { leases }: { leases: readonly (Lease & { dueAt: Date })[] },
): Promise<number[]> {
  if (leases.length === 0) return []
  const dueAt = leases.map((l) => l.dueAt.toISOString())
  const rows = await runPrepared(db, releaseStatement.bind(db, { ...leaseValues(leases), dueAt }))
  return rows.map(([id]) => Number(id))
}

/**
 * When a lease taken or extended now lapses. clock_timestamp(), not now(): now() is when the
 * statement arrived, and one that waited on a lock (a migration's, a stalled disk) for longer than
 * the lease would hand out leases already lapsed, rescued and processed twice at once (the
 * fault-injection test caught it).
 */
const leaseExpiry = sql`clock_timestamp() + ${sql.placeholder('leaseMs')} * interval '1 millisecond'`

/** The leases as the arrays `leaseTable` reads. */
interface LeaseValues extends Record<string, unknown> {
  leaseIds: number[]
  leaseTokens: number[]
}

function leaseValues(leases: readonly Lease[]): LeaseValues {
  return { leaseIds: leases.map((l) => l.id), leaseTokens: leases.map((l) => l.token) }
}

/** `(id, token[, ...])` rows from leaseValues' arrays, joined against orders as `lease`. */
function leaseTable(moreArrays: SQL = sql``, moreColumns: SQL = sql``): SQL {
  return sql`unnest(${sql.placeholder('leaseIds')}::bigint[], ${sql.placeholder('leaseTokens')}::int[]${moreArrays})
    as lease(id, token${moreColumns})`
}

/** The fence: the row is this lease's order, still processing under this very token. */
const held = sql`${orders.id} = lease.id and ${orders.leaseToken} = lease.token and ${orders.status} = 'processing'`

const leaseStatement = new Statement<{ limit: number; workerId: string; leaseMs: number }>(sql`
  with claimed as materialized (
    select id, run_at from ${orders}
    where ${claimable.where}
    order by ${claimable.orderBy}
    limit ${sql.placeholder('limit')}
    for update skip locked
  )
  update ${orders} set
    status = 'processing',
    attempts = ${orders.attempts} + 1,
    lease_token = ${orders.leaseToken} + 1,
    locked_by = ${sql.placeholder('workerId')},
    run_at = ${leaseExpiry},
    updated_at = now()
  from claimed
  where ${orders.id} = claimed.id
  returning ${orderColumnList}, claimed.run_at`)

const extendStatement = new Statement<LeaseValues & { leaseMs: number }>(sql`
  update ${orders} set run_at = ${leaseExpiry}
  from ${leaseTable()}
  where ${held}
  returning ${orders.id}`)

const lockStatement = new Statement<LeaseValues>(
  sql`select ${orders.id} from ${orders}, ${leaseTable()} where ${held} for update of ${orders}`,
)

type SettlementValues = LeaseValues & { workerId: string } & FailureValues

/** The leases' settlement; `keyed`: with the promotion of the completed heads' next orders. */
function settlementQuery(keyed: boolean): SQL {
  return sql`
  with completed as (
    update ${orders} set
      status = 'completed', completed_at = statement_timestamp(), completed_by = ${sql.placeholder('workerId')},
      locked_by = null, updated_at = statement_timestamp()
    from ${leaseTable()}
    where ${held}
    returning ${orders.id}${keyed ? sql`, ${orders.orderingKey}` : sql``}
  ),
  failed as (
    update ${orders} set ${failureTransition(sql`${orders.attempts}`)}, updated_at = statement_timestamp()
    from ${failureTable}
    where ${orders.id} = failure.id and ${orders.leaseToken} = failure.token and ${orders.status} = 'processing'
    returning ${orders.id}, ${orders.status}, ${orders.runAt}
  )${
    keyed
      ? sql`,
  promoted as (${promoteNextOf(sql`completed`)})`
      : sql``
  }
  select id, 'completed', null${keyed ? sql`, false` : sql``} from completed
  union all
  select id, status::text, run_at::text${keyed ? sql`, false` : sql``} from failed${
    keyed
      ? sql`
  union all
  select id, status::text, run_at::text, true from promoted`
      : sql``
  }`
}

const settlementStatement = new Statement<SettlementValues>(settlementQuery(false))
const keyedSettlementStatement = new Statement<SettlementValues>(settlementQuery(true))

const releaseStatement = new Statement<LeaseValues & { dueAt: string[] }>(sql`
  update ${orders} set
    status = 'pending', attempts = ${orders.attempts} - 1, run_at = lease.due_at, locked_by = null, updated_at = now()
  from ${leaseTable(sql`, ${sql.placeholder('dueAt')}::text[]::timestamptz[]`, sql`, due_at`)}
  where ${held}
  returning ${orders.id}`)
