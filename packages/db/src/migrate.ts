import { sql } from 'drizzle-orm'
import { migrate } from 'drizzle-orm/postgres-js/migrator'
import { fileURLToPath } from 'node:url'
import { advisoryLock } from './advisory-locks.js'
import { closeDb, createDb } from './client.js'

export const migrationsFolder = fileURLToPath(new URL('../drizzle', import.meta.url))

/**
 * Applies the committed migrations in `drizzle/`. Every process may call this at start-up at the
 * same time: a session-level advisory lock lets one migrate while the others wait, then find
 * nothing left to do.
 */
export async function migrateDatabase(url: string): Promise<void> {
  // One connection, so the lock and the migration share a session.
  const db = createDb(url, { maxConnections: 1, applicationName: 'postgres-queue migrate' })
  try {
    await db.execute(sql`select pg_advisory_lock(${advisoryLock.migrate})`)
    await migrate(db, { migrationsFolder })
    await db.execute(sql`select pg_advisory_unlock(${advisoryLock.migrate})`)
  } finally {
    await closeDb(db)
  }
}
