import type { ClaimedBatch, Db } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
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

/** A batch whose transaction failed: nothing of it committed. Carries the orders it had claimed. */
export class BatchFailedError extends Error {
  override readonly name = 'BatchFailedError'
  constructor(
    readonly ids: readonly number[],
    cause: unknown,
  ) {
    super(`a batch of ${ids.length} orders failed and was rolled back`, { cause })
  }
}
