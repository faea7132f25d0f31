// Processors' CommitWork gets a drizzle transaction; `sql` from here is the same drizzle, so raw
// statements and the query builder interoperate with it.
export { sql } from 'drizzle-orm'
export { closeDb, createDb, type Db, type DbOptions, type Executor, type Schema } from './client.js'
export { DatabaseUnavailableError, isDatabaseUnavailable, sqlState } from './errors.js'
export { migrateDatabase, migrationsFolder } from './migrate.js'
export * from './queries/claims.js'
export * from './queries/health.js'
export * from './queries/leases.js'
export * from './queries/orders.js'
export * from './queries/wakeups.js'
export type { FailureOutcome, Order, OrderFailure, RetryPolicy } from './queries/shared.js'
export { type LineItem, type OrderStatus, orderStatus, orderStatuses, orders } from './schema.js'
