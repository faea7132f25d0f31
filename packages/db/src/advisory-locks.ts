import { type SQL, sql } from 'drizzle-orm'
import type { Db } from './client.js'

/**
 * Advisory lock keys, in one place so two features never share one by accident. The first key is a
 * namespace for this service and the queue's schema, so it cannot collide with another
 * application's locks, nor another queue's in the same database.
 */
export function advisoryLock(db: Db, feature: 'migrate' | 'retention'): SQL {
  const key = { migrate: 1, retention: 2 }[feature]
  return sql`hashtext(${`postgres-queue:${db.$queueSchema}`}), ${key}`
}
