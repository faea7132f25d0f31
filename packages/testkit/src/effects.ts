import { closeDb, createDb, type Db, type Executor, sql } from '@postgres-queue/db'
import { createTestDatabase } from './test-database.js'

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

/** A migrated database of this test's own (createTestDatabase) with the order_effects table, and a pool on it. */
export async function openEffectsDatabase(
  t: { teardown(fn: () => unknown): void },
  maxConnections = 10,
): Promise<{ db: Db; url: string }> {
  const url = await createTestDatabase(t)
  const db = createDb(url, { maxConnections })
  t.teardown(() => closeDb(db))
  await createEffectsTable(db)
  return { db, url }
}
