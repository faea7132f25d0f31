import { type Db, type Executor, sql } from '@postgres-queue/db'

// The evidence the exactly-once tests read: a processor under test returns recordEffect's
// CommitWork, which writes one order_effects row in the completing transaction. An order
// processed twice shows as two rows; one rolled back leaves none.

/** No unique constraint, on purpose: a double processing must show, not fail. */
export async function createEffectsTable(db: Db): Promise<void> {
  await db.execute(sql`create table order_effects (order_id bigint not null, worker_id text not null)`)
}

/** CommitWork recording that `orderId` was processed by `workerId`. */
export const recordEffect =
  (orderId: number, workerId: string) =>
  async (tx: Executor): Promise<void> => {
    await tx.execute(sql`insert into order_effects (order_id, worker_id) values (${orderId}, ${workerId})`)
  }

/** Effect rows per order id. */
export async function effectCounts(db: Db): Promise<Map<number, number>> {
  const rows = await db.execute<{ order_id: string; n: number }>(sql`
    select order_id, count(*)::int as n from order_effects group by order_id`)
  return new Map(rows.map((r) => [Number(r.order_id), r.n]))
}
