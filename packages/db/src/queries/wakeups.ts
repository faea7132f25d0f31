import { sql } from 'drizzle-orm'
import type { Db } from '../client.js'

/** The LISTEN/NOTIFY channel that tells a queue's workers orders are waiting: one per schema. */
export const channelOf = (db: Db) => `${db.$queueSchema}_orders`

/**
 * Tells listening workers that orders were committed: due now when `dueAt` is absent, else
 * scheduled, the earliest due at `dueAt` (workers promote it then, instead of at their next tick).
 * Runs in a statement of its own, after the insert has committed: a notifying transaction takes a
 * cluster-wide lock through its commit's WAL flush, so notifying inserts could not share an fsync
 * with each other (the single-insert ceiling drops from ~16k to ~4.7k rows/s at 8 clients). Callers
 * coalesce: one notification covers every commit before it. (An idle api's insert notifies in its
 * own transaction instead: insertSubmissions' `notify`.)
 */
export async function notifyOrdersWaiting(db: Db, { dueAt }: { dueAt?: Date } = {}): Promise<void> {
  await db.execute(sql`select pg_notify(${channelOf(db)}, ${dueAt === undefined ? '' : String(dueAt.getTime())})`)
}

export interface Subscription {
  unsubscribe(): Promise<void>
}

/**
 * Calls `onWake` for every notification, on a dedicated connection (postgres.js keeps one for
 * LISTEN, outside the pool), with the `dueAt` it carried. `onWake` also runs once the subscription
 * is in place, so a caller catches up on anything committed before it was listening. Rejects when
 * the database cannot be reached; a caller keeps polling and subscribes again later.
 */
export async function listenForOrders(db: Db, onWake: (dueAt?: Date) => void): Promise<Subscription> {
  const { unlisten } = await db.$client.listen(
    channelOf(db),
    (payload) => {
      const at = Number(payload)
      onWake(payload === '' || !Number.isFinite(at) ? undefined : new Date(at))
    },
    () => onWake(),
  )
  return { unsubscribe: unlisten }
}
