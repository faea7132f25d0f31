import { sql } from 'drizzle-orm'
import { advisoryLock } from '../advisory-locks.js'
import type { Db, Executor } from '../client.js'
import { idempotencyKeys, keyHeadStatus, orderingKeys, orders } from '../schema.js'

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
  return underRetentionLock(db, async (tx) => {
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
  return underRetentionLock(db, async (tx) => {
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

/**
 * Deletes one batch of ordering_keys rows whose key has nothing in line (no head, nothing waiting),
 * under the same try-lock as deleteExpiredOrders. The rows carry nothing but their lock, so deleting
 * one that a submission is about to use costs nothing: its lockOrderingKeys creates it again, and a
 * row locked right now is passed over. Returns the rows deleted, or `undefined` when another worker
 * holds the lock.
 */
export async function deleteIdleOrderingKeys(
  db: Db,
  { batchSize }: { batchSize: number },
): Promise<number | undefined> {
  return underRetentionLock(db, async (tx) => {
    const rows = await tx.execute(sql`
      delete from ${orderingKeys} where key in (
        select key from ${orderingKeys} as line
        where not exists (select from ${orders} where ordering_key = line.key and status = 'waiting')
          and not exists (
            select from ${orders} where ordering_key = line.key and ${keyHeadStatus(orders.status, orders.skippedAt)})
        order by key limit ${batchSize}
        for update skip locked
      )
      returning key`)
    return rows.length
  })
}

/**
 * Runs `work` in a transaction if this caller takes the retention lock: a transaction-level
 * advisory lock taken with try, so of several workers running maintenance at once exactly one
 * works and the others skip at once instead of queueing. `undefined` when another holds it.
 */
async function underRetentionLock<T>(db: Db, work: (tx: Executor) => Promise<T>): Promise<T | undefined> {
  return db.transaction(async (tx) => {
    const [lock] = await tx.execute<{ locked: boolean }>(
      sql`select pg_try_advisory_xact_lock(${advisoryLock(db, 'retention')}) as locked`,
    )
    return lock?.locked ? work(tx) : undefined
  })
}
