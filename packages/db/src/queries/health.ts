import { sql } from 'drizzle-orm'
import type { Executor } from '../client.js'
import { orders } from '../schema.js'

/**
 * Resolves when the orders table answers a trivial read; rejects otherwise. It takes the table's
 * weakest lock, so an exclusive lock on it (a migration, a LOCK TABLE) holds the ping up like it
 * holds up every submission: readiness sees what clients would see, not only whether the server is up.
 */
export async function pingOrders(db: Executor): Promise<void> {
  await db.execute(sql`select 1 from ${orders} limit 1`)
}
