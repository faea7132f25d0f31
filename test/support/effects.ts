import { type Db, insertOrders, type NewOrder, sql } from '@postgres-queue/db'
import { makeOrder } from '@postgres-queue/testkit'

/** Inserts `count` orders, 1,000 to a statement; returns their ids in submission order. */
export async function insertManyOrders(db: Db, count: number, overrides: Partial<NewOrder> = {}): Promise<number[]> {
  const ids: number[] = []
  for (let done = 0; done < count; done += 1000) {
    const batch = Array.from({ length: Math.min(1000, count - done) }, () => makeOrder(overrides))
    ids.push(...(await insertOrders(db, batch)).map((order) => order.id))
  }
  return ids
}

export interface EffectAudit {
  /** Orders of `ids` without an effect row. */
  missing: number[]
  /** Orders of `ids` with more than one. */
  doubled: number[]
  /** Effect rows whose worker is not the one recorded as completing the order. */
  foreign: number
}

/** Checks that each of `ids` has exactly one effect row, written by the worker that completed it. */
export async function auditEffects(db: Db, ids: readonly number[]): Promise<EffectAudit> {
  const rows = await db.execute<{ order_id: string; n: number; foreign: number }>(sql`
    select e.order_id, count(*)::int as n, count(*) filter (where e.worker_id is distinct from o.completed_by)::int as foreign
    from order_effects e left join orders o on o.id = e.order_id
    group by e.order_id`)
  const counts = new Map(rows.map((r) => [Number(r.order_id), r.n]))
  return {
    missing: ids.filter((id) => !counts.has(id)),
    doubled: ids.filter((id) => (counts.get(id) ?? 0) > 1),
    foreign: rows.reduce((sum, r) => sum + r.foreign, 0),
  }
}

/** Completed orders per completing worker, busiest first, as `worker: n` for a comment. */
export async function ordersPerWorker(db: Db): Promise<string> {
  const rows = await db.execute<{ completed_by: string; n: number }>(sql`
    select completed_by, count(*)::int as n from orders where status = 'completed'
    group by completed_by order by n desc, completed_by`)
  return rows.map((r) => `${r.completed_by}: ${r.n}`).join(', ')
}
