import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { sql } from 'drizzle-orm'
import { readMigrationFiles } from 'drizzle-orm/migrator'
import { migrate } from 'drizzle-orm/postgres-js/migrator'
import { advisoryLock } from './advisory-locks.js'
import { closeDb, createDb, type Db, DEFAULT_SCHEMA } from './client.js'
import { isDatabaseUnavailable } from './errors.js'

export const migrationsFolder = fileURLToPath(new URL('../drizzle', import.meta.url))
/** Migrations of the layout before the queue had a schema of its own: everything in public. */
const legacyFolder = fileURLToPath(new URL('../drizzle/legacy', import.meta.url))
const legacyUpgrade = fileURLToPath(new URL('../drizzle/legacy/upgrade.sql', import.meta.url))

/** The journal, inside the queue's own schema like everything else. */
const JOURNAL_TABLE = '__drizzle_migrations'
/** The `when` of the legacy first migration: a legacy journal holding it is this queue's. */
const LEGACY_FIRST_MIGRATION = 1795809225519

export interface MigrateOptions {
  /** The schema to create and migrate (DATABASE_SCHEMA); default postgres_queue. */
  schema?: string
}

/** The longest pause between two attempts of migrateWhenReachable. */
const MAX_RETRY_DELAY_MS = 2000

/**
 * Creates the queue's schema and applies the committed migrations in `drizzle/` to it, journal
 * included, so nothing is written outside it: a database that already has a public.orders, a
 * workers table or an order_status type is left alone. Every process may call this at start-up at
 * the same time: a session-level advisory lock lets one migrate while the others wait, then find
 * nothing left to do.
 *
 * An install of the earlier layout (its tables in public, its journal in drizzle.__drizzle_migrations)
 * is upgraded first: brought to its last migration, then moved into the schema and converted
 * (drizzle/legacy/upgrade.sql), in one transaction, its orders kept.
 */
export async function migrateDatabase(url: string, { schema = DEFAULT_SCHEMA }: MigrateOptions = {}): Promise<void> {
  // One connection, so the lock and the migration share a session.
  const db = createDb(url, { maxConnections: 1, applicationName: 'postgres-queue migrate', schema })
  try {
    await db.execute(sql`select pg_advisory_lock(${advisoryLock(db, 'migrate')})`)
    await db.execute(sql`create schema if not exists ${sql.identifier(schema)}`)
    if (await isLegacyInstall(db)) await upgradeLegacyInstall(url, db)
    await migrate(db, { migrationsFolder, migrationsSchema: schema, migrationsTable: JOURNAL_TABLE })
    await db.execute(sql`select pg_advisory_unlock(${advisoryLock(db, 'migrate')})`)
  } finally {
    await closeDb(db)
  }
}

/** The earlier layout's journal records this queue's first migration, and the new journal is empty. */
async function isLegacyInstall(db: Db): Promise<boolean> {
  const [row] = await db.execute<{ legacy: boolean }>(sql`
    select to_regclass('drizzle.__drizzle_migrations') is not null
       and to_regclass(${`${db.$queueSchema}.${JOURNAL_TABLE}`}) is null as legacy`)
  if (!row?.legacy) return false
  const [ours] = await db.execute<{ n: number }>(
    sql`select count(*)::int as n from drizzle.__drizzle_migrations where created_at = ${LEGACY_FIRST_MIGRATION}`,
  )
  return (ours?.n ?? 0) > 0
}

async function upgradeLegacyInstall(url: string, db: Db): Promise<void> {
  // Bring public to the earlier layout's last migration, with its own journal, as it would have been.
  const publicDb = createDb(url, { maxConnections: 1, applicationName: 'postgres-queue migrate', schema: 'public' })
  try {
    await migrate(publicDb, { migrationsFolder: legacyFolder })
  } finally {
    await closeDb(publicDb)
  }
  const [baseline] = readMigrationFiles({ migrationsFolder })
  if (!baseline) throw new Error(`no migrations in ${migrationsFolder}`)
  const upgrade = (await readFile(legacyUpgrade, 'utf8')).replaceAll('__SCHEMA__', `"${db.$queueSchema}"`)
  const legacyStamps = readMigrationFiles({ migrationsFolder: legacyFolder }).map((m) => m.folderMillis)
  await db.transaction(async (tx) => {
    await tx.execute(sql.raw(upgrade))
    // The new journal starts with the baseline, which the upgrade has just built: it is not run again.
    await tx.execute(sql`
      create table ${sql.identifier(db.$queueSchema)}.${sql.identifier(JOURNAL_TABLE)} (
        id serial primary key, hash text not null, created_at bigint)`)
    await tx.execute(sql`
      insert into ${sql.identifier(db.$queueSchema)}.${sql.identifier(JOURNAL_TABLE)} (hash, created_at)
      values (${baseline.hash}, ${baseline.folderMillis})`)
    await tx.execute(
      sql`delete from drizzle.__drizzle_migrations where created_at = any(${sql.param(legacyStamps)}::bigint[])`,
    )
  })
}

export interface MigrateWhenReachableOptions extends MigrateOptions {
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
      await migrateDatabase(url, options)
      return
    } catch (err) {
      const delayMs = Math.min(250 * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS)
      if (!isDatabaseUnavailable(err) || Date.now() + delayMs > deadline) throw err
      options.onRetry?.(err, attempt)
      await sleep(delayMs)
    }
  }
}

/**
 * The newest migration this code needs: the last of drizzle/meta/_journal.json (schema.test.ts holds
 * them equal). A constant, because a service runs as one bundled file, far from the drizzle folder.
 */
export const NEWEST_MIGRATION = { tag: '0005_submit_ordering_key', when: 1796644155748 }

/** Whether the queue's schema is ready for this code: migrated, not at all, or to an older migration. */
export type SchemaState = 'current' | 'unmigrated' | 'behind'

/** Reads the queue's migration journal. Rejects when the database cannot be reached. */
export async function schemaState(db: Db): Promise<SchemaState> {
  const journal = `${db.$queueSchema}.${JOURNAL_TABLE}`
  const [found] = await db.execute<{ exists: boolean }>(sql`select to_regclass(${journal}) is not null as exists`)
  if (!found?.exists) return 'unmigrated'
  const [newest] = await db.execute<{ at: string | null }>(
    sql`select max(created_at)::text as at from ${sql.identifier(db.$queueSchema)}.${sql.identifier(JOURNAL_TABLE)}`,
  )
  return Number(newest?.at ?? 0) >= NEWEST_MIGRATION.when ? 'current' : 'behind'
}

/** A service refusing a schema it cannot run on; the message says what to do. */
export class SchemaNotMigratedError extends Error {
  override readonly name = 'SchemaNotMigratedError'
  constructor(schema: string, state: Exclude<SchemaState, 'current'>) {
    super(
      `${state === 'unmigrated' ? `the database has no migrated schema ${schema}` : `the schema ${schema} is behind this version (its newest migration is older than ${NEWEST_MIGRATION.tag})`}: run the migration first (pnpm db:migrate, the compose file's migrate service, the Kubernetes Job)`,
    )
  }
}

/** Throws SchemaNotMigratedError unless the schema is current; a database that cannot be reached passes (it is checked again on use). */
export async function assertMigrated(db: Db): Promise<void> {
  let state: SchemaState
  try {
    state = await schemaState(db)
  } catch (err) {
    if (isDatabaseUnavailable(err)) return
    throw err
  }
  if (state !== 'current') throw new SchemaNotMigratedError(db.$queueSchema, state)
}
