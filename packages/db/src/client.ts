import type { PgDatabase } from 'drizzle-orm/pg-core'
import { drizzle, type PostgresJsDatabase, type PostgresJsQueryResultHKT } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import * as schema from './schema.js'

export type Schema = typeof schema
export type Db = PostgresJsDatabase<Schema> & { $client: postgres.Sql }
/** What a query runs on: the pool, or a transaction opened with `db.transaction()`. */
export type Executor = PgDatabase<PostgresJsQueryResultHKT, Schema>

export interface DbOptions {
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
}

/**
 * Opens a pool (postgres.js) wrapped in drizzle. Connections open lazily, so creating a Db never
 * fails because the database is down; the first query does, with a translatable error.
 */
export function createDb(url: string, options: DbOptions = {}): Db {
  const connection: Record<string, string | number> = {
    application_name: options.applicationName ?? 'postgres-queue',
  }
  if (options.statementTimeoutMs !== undefined) connection.statement_timeout = options.statementTimeoutMs
  if (options.idleInTransactionTimeoutMs !== undefined) {
    connection.idle_in_transaction_session_timeout = options.idleInTransactionTimeoutMs
  }
  const client = postgres(url, {
    max: options.maxConnections ?? 10,
    connect_timeout: options.connectTimeoutSeconds ?? 5,
    connection,
    onnotice: () => {},
  })
  return drizzle({ client, schema, casing: 'snake_case' })
}

/** Closes the pool, letting running queries finish for at most `timeoutSeconds`. */
export async function closeDb(db: Db, timeoutSeconds = 5): Promise<void> {
  await db.$client.end({ timeout: timeoutSeconds })
}
