import {
  type ClaimedBatch,
  type Db,
  databaseAnswers,
  isDatabaseUnavailable,
  isTransientDatabaseError,
} from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { DatabaseClock } from './clock.js'
import type { WorkerConfig } from './config.js'
import type { WorkerObserver } from './outcomes.js'
import type { OrderProcessor } from './processor.js'

/** What one batch of either mode needs. */
export interface BatchDeps {
  db: Db
  processor: OrderProcessor
  config: Pick<
    WorkerConfig,
    'workerId' | 'batchSize' | 'orderTimeoutMs' | 'batchTimeoutMs' | 'leaseMs' | 'concurrency' | 'retry'
  >
  log: Logger
  observer: WorkerObserver
  /** The database's time: an order's wait is measured against it. */
  clock: DatabaseClock
  /** Graceful stop: start no more orders; settle the ones in hand. */
  draining: AbortSignal
  /** Forced stop: abandon the batch in hand. */
  stop: AbortSignal
}

export interface BatchResult {
  /** Orders the claim took: a full batch means the queue may hold more. */
  claimed: number
  /** The earliest retry the batch scheduled, so the worker promotes it on time. */
  retryAt?: Date
  /**
   * Transaction mode: the next batch, already claimed with this one's commit. Whoever receives it
   * runs it or rolls it back.
   */
  next?: ClaimedBatch
  /**
   * Transaction mode: how long the batch's orders took to process, and its settlement (with the
   * next claim) in the database. The drain sizes its lanes by them (lanes.ts).
   */
  timing?: { processingMs: number; settlingMs: number }
}

/**
 * A batch whose transaction failed: nothing of it committed. Carries the orders it had claimed, and
 * the one it was working on when the failure showed (`inHand`: the last order started), the one to
 * suspect when the session ended under it.
 */
export class BatchFailedError extends Error {
  override readonly name = 'BatchFailedError'
  constructor(
    readonly ids: readonly number[],
    cause: unknown,
    readonly inHand?: number,
  ) {
    super(`a batch of ${ids.length} orders failed and was rolled back`, { cause })
  }
}

/**
 * Whether a batch whose transaction failed with `err` is broken by an order in it, so splitting it
 * finds that order, rather than failed by the moment (a lock or statement timeout, a deadlock, the
 * database away), which is retried as it is. A lost connection is the batch's own doing when the
 * database still answers: something in it ended its session (a CommitWork that terminates it, a
 * processor that blocked the event loop past the session's idle timeout), and it would again.
 */
export async function breaksItsBatch(db: Db, err: unknown): Promise<boolean> {
  if (!isTransientDatabaseError(err)) return true
  return isDatabaseUnavailable(err) && (await databaseAnswers(db))
}
