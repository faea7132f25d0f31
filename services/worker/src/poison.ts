import { type ClaimedBatch, claimBatch, isDatabaseUnavailable, settleBatch } from '@postgres-queue/db'
import { type BatchDeps, BatchFailedError, type BatchResult, breaksItsBatch } from './batch.js'
import type { ClaimSize } from './lanes.js'
import { describeError } from './thrown.js'
import { runTransactionBatch } from './transaction-batch.js'

/**
 * A transaction-mode batch that cannot fail forever. When the batch's own transaction fails (not a
 * processor: those fail only their order; but say a trigger refuses one order's completion, or a
 * CommitWork breaks the transaction from outside its savepoint), the whole batch rolls back, and
 * claiming it again would fail again, on every tick, with the good orders in it processed each time.
 *
 * So the failed batch is split in halves, each run on its own, until the order that breaks it is
 * alone; that order's attempt is then recorded as failed in a transaction of its own (retried with
 * backoff, dead-lettered after maxAttempts). About log2(batch) extra runs for its neighbours, once;
 * one, when the session ended under the batch (splitForIsolation).
 *
 * A batch whose session was ended while the database still answers is split too: an order in it
 * ended the session (breaksItsBatch). Not split: transient failures (the database unreachable, a
 * lock or statement timeout, a deadlock), which are nobody's fault and are retried as they are, and
 * a forced stop.
 */
export async function runIsolatingPoison(
  deps: BatchDeps,
  { only, claimed, size }: { only?: readonly number[]; claimed?: ClaimedBatch; size?: ClaimSize } = {},
): Promise<BatchResult> {
  try {
    return await runTransactionBatch(deps, { only, claimed, size })
  } catch (err) {
    if (!(err instanceof BatchFailedError) || deps.stop.aborted || !(await breaksItsBatch(deps.db, err.cause)))
      throw err
    const { ids } = err
    if (ids.length === 0) throw err // it failed before claiming anything: nothing to isolate
    if (ids.length === 1) return recordPoison(deps, ids[0] as number, err.cause)
    deps.log.warn(
      { err: err.cause, orders: ids.length },
      'batch failed; splitting it to isolate the order that breaks it',
    )
    const [first, second] = splitForIsolation(ids, err)
    const results = [await runIsolatingPoison(deps, { only: first }), await runIsolatingPoison(deps, { only: second })]
    const retryAt = results
      .map((r) => r.retryAt)
      .filter((d) => d !== undefined)
      .sort((a, b) => +a - +b)[0]
    return { claimed: ids.length, retryAt }
  }
}

/**
 * The two parts to run apart. Halves, so the breaking order is alone after log2(batch) runs; but a
 * session that ended under the batch most likely ended under the order in hand (its CommitWork
 * terminated it, or its processor blocked the event loop past the idle timeout), and that order
 * alone first costs two runs of the batch instead of log2: each run of a blocking order blocks the
 * worker for as long again.
 */
function splitForIsolation(ids: readonly number[], err: BatchFailedError): [number[], number[]] {
  const suspect = err.inHand
  if (suspect !== undefined && isDatabaseUnavailable(err.cause)) return [[suspect], ids.filter((id) => id !== suspect)]
  const half = Math.ceil(ids.length / 2)
  return [ids.slice(0, half), ids.slice(half)]
}

/** Counts a failed attempt for the order that breaks every batch it is in, alone in its own transaction. */
async function recordPoison(deps: BatchDeps, id: number, cause: unknown): Promise<BatchResult> {
  const { db, config, log } = deps
  const error = describeError(new PoisonOrderError(cause))
  const { tx, orders } = await claimBatch(db, { limit: 1, ids: [id] })
  const [order] = orders
  if (order === undefined) {
    await tx.rollback() // taken or settled meanwhile
    return { claimed: 0 }
  }
  const attempt = order.attempts + 1
  const [failed] = await settleBatch(tx, {
    completed: [],
    failures: [{ id, attempt, error }],
    workerId: config.workerId,
    policy: config.retry,
  })
  if (failed === undefined) return { claimed: 0 }
  const deadLettered = failed.status === 'failed'
  log.error(
    { orderId: id, attempt, err: cause },
    `order breaks its batch; ${deadLettered ? 'dead-lettered' : 'will retry'}`,
  )
  deps.observer.settled({ orderId: id, attempt, outcome: deadLettered ? 'dead_lettered' : 'retried' })
  return { claimed: 1, retryAt: deadLettered ? undefined : failed.runAt }
}

class PoisonOrderError extends Error {
  override readonly name = 'PoisonOrderError'
  constructor(cause: unknown) {
    super(`the batch transaction failed with this order in it, and again with it alone: ${describeError(cause)}`)
  }
}
