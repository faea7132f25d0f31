import { claimBatch, type Db, keysOf, type Settlement, settleBatch } from '@postgres-queue/db'

/**
 * For tests: claims these orders and settles them at once, as a worker would after processing
 * them: `completed` complete, `failed` fail with `error` (retried at once, or dead-lettered on
 * their last attempt); the next orders of the completed ones' keys are promoted. Returns what the
 * settlement did.
 */
export async function settleNow(
  db: Db,
  {
    completed = [],
    failed = [],
    error = 'boom',
    workerId = 'test-worker',
    backoffMs = 0,
  }: {
    completed?: readonly number[]
    failed?: readonly number[]
    error?: string
    workerId?: string
    backoffMs?: number
  },
): Promise<Settlement> {
  const ids = [...completed, ...failed]
  const { tx, orders } = await claimBatch(db, { limit: Math.max(1, ids.length), ids })
  const attempts = new Map(orders.map((order) => [order.id, order.attempts + 1]))
  const done = new Set(completed)
  return settleBatch(tx, {
    completed,
    completedKeys: keysOf(orders.filter((order) => done.has(order.id))),
    failures: failed.map((id) => ({ id, attempt: attempts.get(id) ?? 1, error })),
    workerId,
    policy: { baseMs: backoffMs, maxMs: backoffMs },
  })
}
