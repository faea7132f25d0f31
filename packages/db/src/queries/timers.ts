import { sql } from 'drizzle-orm'
import type { Executor } from '../client.js'
import { orders } from '../schema.js'

// What comes due by time, kept out of the claim's index so a claim never steps over it: scheduled
// orders (a delay, a retry's backoff) and leases (which lapse when their worker dies). Both wait in
// orders_timers_idx by run_at; promotion moves the due ones to pending, where claims find them.

/** Why an order whose lease lapsed on its last attempt was dead-lettered (kept in last_error). */
export const LEASE_LAPSED_ERROR = 'lease expired: the worker holding it stopped without completing it'

export interface Promotion {
  /** Scheduled orders that came due and are now pending. */
  promoted: number
  /** Lapsed leases given back, and who held them: pending again, the lapsed attempt counted. */
  rescued: { id: number; heldBy: string | null }[]
  /** Lapsed leases with no attempt left (their worker kept dying): now failed, after `attempts`. */
  deadLettered: { id: number; attempts: number }[]
}

/**
 * Promotes up to `limit` orders whose time has come, oldest first, in one statement: a scheduled
 * order becomes pending (keeping run_at, when it became due, so its wait counts from then); a
 * processing order whose lease lapsed becomes pending again, due now, or failed if that lease was
 * its last attempt. Concurrent callers take disjoint rows (SKIP LOCKED); the plan walks
 * orders_timers_idx from its oldest entry and stops at the first not yet due.
 *
 * Transition: scheduled (due) -> pending; processing (lease lapsed) -> pending | failed.
 */
export async function promoteDueOrders(db: Executor, { limit }: { limit: number }): Promise<Promotion> {
  const rows = await db.execute<{
    id: string
    was: string
    status: string
    attempts: number
    held_by: string | null
  }>(sql`
    with due as materialized (
      select id, status, locked_by, attempts >= max_attempts as exhausted from ${orders}
      where status in ('scheduled', 'processing') and run_at <= now()
      order by run_at
      limit ${limit}
      for update skip locked
    )
    update ${orders} set
      status = (case when due.status = 'processing' and due.exhausted then 'failed' else 'pending' end),
      run_at = case when due.status = 'processing' then now() else ${orders.runAt} end,
      last_error = case when due.status = 'processing' and due.exhausted then ${LEASE_LAPSED_ERROR}
                   else ${orders.lastError} end,
      locked_by = null,
      updated_at = now()
    from due
    where ${orders.id} = due.id
    returning ${orders.id}, due.status as was, ${orders.status}, ${orders.attempts}, due.locked_by as held_by`)
  const promotion: Promotion = { promoted: 0, rescued: [], deadLettered: [] }
  for (const row of rows) {
    if (row.was === 'scheduled') promotion.promoted += 1
    else if (row.status === 'failed') promotion.deadLettered.push({ id: Number(row.id), attempts: row.attempts })
    else promotion.rescued.push({ id: Number(row.id), heldBy: row.held_by })
  }
  return promotion
}

/** The next time something comes due, and the database's clock when it was read. */
export interface NextDue {
  /** The earliest run_at in orders_timers_idx, if anything waits there. */
  dueAt: Date | undefined
  /** The database's clock: a caller times its wait against this, never against its own clock. */
  databaseNow: Date
}

/**
 * When the next scheduled order comes due or the next lease lapses, if any: the earliest run_at in
 * orders_timers_idx (one index probe). It may be past: an order that came due after the
 * promotion's statement began (or while another transaction held it locked) is still waiting, and
 * leaving it out would leave it to the schedule's next tick.
 */
export async function nextDueAt(db: Executor): Promise<NextDue> {
  const [row] = await db.execute<{ at: string | null; now: string }>(sql`
    select min(run_at) as at, clock_timestamp() as now from ${orders}
    where status in ('scheduled', 'processing')`)
  return { dueAt: row?.at ? new Date(row.at) : undefined, databaseNow: new Date(row?.now as string) }
}
