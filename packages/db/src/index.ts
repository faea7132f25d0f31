// Processors' CommitWork gets a drizzle transaction; `sql` from here is the same drizzle, so raw
// statements and the query builder interoperate with it.
export { sql } from 'drizzle-orm'
export { closeDb, createDb, type Db, type DbOptions, DEFAULT_SCHEMA, type Executor, type Schema } from './client.js'
export { isDatabaseUnavailable, isTransientDatabaseError, sqlState } from './errors.js'
export {
  assertMigrated,
  type MigrateOptions,
  type MigrateWhenReachableOptions,
  migrateDatabase,
  migrateWhenReachable,
  migrationsFolder,
  NEWEST_MIGRATION,
  SchemaNotMigratedError,
  type SchemaState,
  schemaState,
} from './migrate.js'
export * from './queries/claims.js'
export * from './queries/health.js'
export * from './queries/leases.js'
export * from './queries/ordering-keys.js'
export * from './queries/orders.js'
export * from './queries/retention.js'
export {
  type FailureOutcome,
  type Order,
  type OrderFailure,
  orderColumnName,
  type RetryPolicy,
  retryDelayMs,
} from './queries/shared.js'
export * from './queries/stats.js'
export * from './queries/submission.js'
export * from './queries/timers.js'
export * from './queries/wakeups.js'
export * from './queries/workers.js'
export {
  idempotencyKeys,
  type LineItem,
  type OrderStatus,
  orderStatuses,
  orders,
  type WorkerRow,
} from './schema.js'
export { CURRENCY_CODES, LineItemBody, NewOrderBatchBody, NewOrderBody, schedule } from './submission/rules.js'
export { submissionFunctionsSql } from './submission/sql.js'
export {
  BatchTransaction,
  SavepointClosedError,
  type SavepointOutcome,
  SavepointTimeoutError,
} from './transaction.js'
export {
  oldestUnansweredCall,
  STALLED_CONNECTION,
  type StallWatch,
  stallLimitMs,
  watchForStalls,
} from './unanswered.js'
