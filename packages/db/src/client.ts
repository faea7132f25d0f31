import type { PgDatabase } from 'drizzle-orm/pg-core'
import { drizzle, type PostgresJsDatabase, type PostgresJsQueryResultHKT } from 'drizzle-orm/postgres-js'
import postgres from './driver.js'
import * as schema from './schema.js'
import { type PendingCalls, registerPendingCalls, watchClient } from './unanswered.js'

export type Schema = typeof schema
export type Db = PostgresJsDatabase<Schema> & {
  $client: postgres.Sql
  /** The PostgreSQL schema the queue's tables live in (DATABASE_SCHEMA). */
  $queueSchema: string
}
/** What a query runs on: the pool, or a transaction opened with `db.transaction()`. */
export type Executor = PgDatabase<PostgresJsQueryResultHKT, Schema>

/** The PostgreSQL schema every table, index and sequence of the queue lives in, unless configured. */
export const DEFAULT_SCHEMA = 'postgres_queue'

/** A plain, unquoted PostgreSQL identifier: what DATABASE_SCHEMA may be. */
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/

export interface DbOptions {
  /**
   * The schema the queue lives in (default postgres_queue). Every connection's search_path is this
   * schema first, then PostgreSQL's default ("$user", public): the queue's own unqualified names
   * always find its tables (a database may have its own public.orders), and a processor's CommitWork
   * finds the team's tables (`insert into shipments ...`). A team table named like one of the queue's
   * (orders, workers, idempotency_keys, order_throughput) must be written qualified: public.orders.
   */
  schema?: string
  /** Connections in this process's pool. */
  maxConnections?: number
  /** Shown in pg_stat_activity, so an operator can tell the api's sessions from each worker's. */
  applicationName?: string
  /** Server-side cap on any one statement (statement_timeout). */
  statementTimeoutMs?: number
  /** The server ends a session left idle inside a transaction this long, rolling it back. */
  idleInTransactionTimeoutMs?: number
  /** How long to wait for a new connection before failing the query. */
  connectTimeoutSeconds?: number
  /** The longest pause between reconnection attempts while the database is away (default 1 s). */
  maxReconnectDelaySeconds?: number
}

/**
 * Opens a pool (postgres.js) wrapped in drizzle. Connections open lazily, so creating a Db never
 * fails because the database is down; the first query does, with a translatable error.
 */
export function createDb(url: string, options: DbOptions = {}): Db {
  const queueSchema = options.schema ?? DEFAULT_SCHEMA
  if (!SCHEMA_NAME.test(queueSchema)) {
    throw new RangeError(`schema ${JSON.stringify(queueSchema)} must be a plain lower-case PostgreSQL identifier`)
  }
  const connection: Record<string, string | number> = {
    application_name: options.applicationName ?? 'postgres-queue',
    search_path: `${queueSchema}, "$user", public`,
  }
  if (options.statementTimeoutMs !== undefined) connection.statement_timeout = options.statementTimeoutMs
  if (options.idleInTransactionTimeoutMs !== undefined) {
    connection.idle_in_transaction_session_timeout = options.idleInTransactionTimeoutMs
  }
  const maxReconnectDelay = options.maxReconnectDelaySeconds ?? 1
  // Every call to the server counts as unanswered until it settles (unanswered.ts): the stall
  // watch sees them all, whichever query function or handle made them.
  const calls: PendingCalls = new Set()
  const client = watchClient(
    postgres(url, {
      max: options.maxConnections ?? 10,
      connect_timeout: options.connectTimeoutSeconds ?? 5,
      // postgres.js grows the pause between reconnection attempts with every failure across the pool,
      // up to 20 s, and resets it only on success: after an outage, queries would wait out that pause
      // long after the database is back (measured: 503s taking 18.8 s, service back 3.5 s after the
      // restart, under 8 concurrent clients). Same jittered growth, capped.
      backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, maxReconnectDelay),
      connection,
      onnotice: () => {},
    }),
    calls,
  )
  const db = Object.assign(drizzle({ client, schema, casing: 'snake_case' }), { $queueSchema: queueSchema })
  registerPendingCalls(db, calls)
  return db
}

/** Closes the pool, letting running queries finish for at most `timeoutSeconds`. */
export async function closeDb(db: Db, timeoutSeconds = 5): Promise<void> {
  await db.$client.end({ timeout: timeoutSeconds })
}
