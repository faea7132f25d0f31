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

/**
 * Whether the server answers at all: a trivial statement that touches no table, so a lock does not
 * hold it up. Tells a session that was ended (by what it ran, or by its idle timeout) from a
 * database that went away.
 */
export async function databaseAnswers(db: Executor): Promise<boolean> {
  try {
    await db.execute(sql`select 1`)
    return true
  } catch {
    return false
  }
}
