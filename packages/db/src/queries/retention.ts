import { sql } from 'drizzle-orm'
import { advisoryLock } from '../advisory-locks.js'
import type { Db } from '../client.js'
import { idempotencyKeys, orders } from '../schema.js'

export interface RetentionPolicy {
  /** Completed and cancelled orders last updated longer ago than this are deleted. */
  olderThanDays: number
  /** Rows per delete: small, so each transaction is short and locks little. */
  batchSize: number
}

/**
 * Deletes one batch of finished orders past retention, oldest first, if this caller holds the
 * retention lock: a transaction-level advisory lock taken with try, so of several workers running
 * maintenance at once exactly one deletes and the others skip at once instead of queueing.
 * Returns the rows deleted, or `undefined` when another worker holds the lock. Failed orders are
 * kept until redriven or deleted by hand.
 *
 * Transition: completed | cancelled -> (deleted).
 */
export async function deleteExpiredOrders(db: Db, policy: RetentionPolicy): Promise<number | undefined> {
  return db.transaction(async (tx) => {
    const [lock] = await tx.execute<{ locked: boolean }>(
      sql`select pg_try_advisory_xact_lock(${advisoryLock(db, 'retention')}) as locked`,
    )
    if (!lock?.locked) return undefined
    // One status at a time: each reads the (status, id) index from the oldest id and stops at the batch.
    let deleted = 0
    for (const status of ['completed', 'cancelled'] as const) {
      const rows = await tx.execute(sql`
        delete from ${orders} where id in (
          select id from ${orders}
          where status = ${status}
            and updated_at < now() - ${policy.olderThanDays} * interval '1 day'
          order by id limit ${policy.batchSize - deleted}
        )
        returning id`)
      deleted += rows.length
      if (deleted >= policy.batchSize) break
    }
    return deleted
  })
}

/**
 * Forgets Idempotency-Keys older than `olderThanDays` whose orders are all gone, one batch, oldest
 * first, under the same try-lock as deleteExpiredOrders. A key outlives its orders: a retry inside
 * the window is answered from the key even after retention deleted the order; and it lives at
 * least as long as any of them, whatever the window says (an order scheduled a year ahead, a
 * failed one kept until redriven), so a retry can never store such an order twice. Keys kept for
 * their orders are stepped over, not counted, so younger keys behind them are still reached.
 * Returns the keys deleted, or `undefined` when another worker holds the lock.
 */
export async function deleteExpiredIdempotencyKeys(
  db: Db,
  { olderThanDays, batchSize }: RetentionPolicy,
): Promise<number | undefined> {
  return db.transaction(async (tx) => {
    const [lock] = await tx.execute<{ locked: boolean }>(
      sql`select pg_try_advisory_xact_lock(${advisoryLock(db, 'retention')}) as locked`,
    )
    if (!lock?.locked) return undefined
    const rows = await tx.execute(sql`
      delete from ${idempotencyKeys} where key in (
        select key from ${idempotencyKeys}
        where created_at < now() - ${olderThanDays} * interval '1 day'
          and not exists (select from ${orders} where ${orders.id} = any(${idempotencyKeys.orderIds}))
        order by created_at limit ${batchSize}
      )
      returning key`)
    return rows.length
  })
}
