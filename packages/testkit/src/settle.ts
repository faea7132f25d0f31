import { claimBatch, type Db, type FailureOutcome, settleBatch } from '@postgres-queue/db'

/**
 * For tests: claims these orders and settles them at once, as a worker would after processing
 * them: `completed` complete, `failed` fail with `error` (retried at once, or dead-lettered on
 * their last attempt). Returns what the failures did.
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
): Promise<FailureOutcome[]> {
  const ids = [...completed, ...failed]
  const { tx, orders } = await claimBatch(db, { limit: Math.max(1, ids.length), ids })
  const attempts = new Map(orders.map((order) => [order.id, order.attempts + 1]))
  return settleBatch(tx, {
    completed,
    failures: failed.map((id) => ({ id, attempt: attempts.get(id) ?? 1, error })),
    workerId,
    policy: { baseMs: backoffMs, maxMs: backoffMs },
  })
}
