import { createDb, type Db, type DbOptions } from '@postgres-queue/db'
import type { ApiConfig } from './config.js'

/**
 * The api's pool. main.ts and the tests both build it here, so the tests exercise the timeouts
 * production runs with; `overrides` lets a test shrink or grow the pool.
 */
export function createApiDb(config: ApiConfig, overrides: DbOptions = {}): Db {
  return createDb(config.databaseUrl, {
    schema: config.databaseSchema,
    maxConnections: config.databasePoolSize,
    applicationName: 'postgres-queue api',
    // postgres.js waits 30 s by default and createDb 5 s: a request would hold its client that long
    // when the database host stops answering (a network partition, a hung server). Connection
    // refused fails at once whatever this is.
    connectTimeoutSeconds: config.databaseConnectTimeoutSeconds,
    // After an outage, a request should find the database within half a second of its return.
    maxReconnectDelaySeconds: 0.5,
    // A lock on the orders table or a stalled disk must turn into a 503, not a request that hangs.
    statementTimeoutMs: config.databaseStatementTimeoutMs,
    ...overrides,
  })
}
