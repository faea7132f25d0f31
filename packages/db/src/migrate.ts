import { setTimeout as sleep } from 'node:timers/promises'
import { sql } from 'drizzle-orm'
import { migrate } from 'drizzle-orm/postgres-js/migrator'
import { fileURLToPath } from 'node:url'
import { advisoryLock } from './advisory-locks.js'
import { closeDb, createDb } from './client.js'
import { isDatabaseUnavailable } from './errors.js'

export const migrationsFolder = fileURLToPath(new URL('../drizzle', import.meta.url))

/** The longest pause between two attempts of migrateWhenReachable. */
const MAX_RETRY_DELAY_MS = 2000

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

export interface MigrateWhenReachableOptions {
  /** Give up, with the last error, rather than wait past this. */
  timeoutMs: number
  /** Called before each pause, with the error that caused it. */
  onRetry?: (err: unknown, attempt: number) => void
}

/**
 * migrateDatabase, retried while the database cannot be reached yet: what a one-shot started next
 * to its database meets (connection refused, a host name not in DNS yet, a server still starting).
 * Anything else, a wrong password or a failing migration, fails at once: waiting would not fix it.
 */
export async function migrateWhenReachable(url: string, options: MigrateWhenReachableOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs
  for (let attempt = 1; ; attempt++) {
    try {
      await migrateDatabase(url)
      return
    } catch (err) {
      const delayMs = Math.min(250 * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS)
      if (!isDatabaseUnavailable(err) || Date.now() + delayMs > deadline) throw err
      options.onRetry?.(err, attempt)
      await sleep(delayMs)
    }
  }
}
