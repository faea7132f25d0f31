import { sql } from 'drizzle-orm'

/**
 * Advisory lock keys, in one place so two features never share one by accident. The first key is a
 * namespace for this service, so it cannot collide with another application's locks in the same
 * database.
 */
const NAMESPACE = sql`hashtext('postgres-queue')`

export const advisoryLock = {
  migrate: sql`${NAMESPACE}, 1`,
  retention: sql`${NAMESPACE}, 2`,
} as const
