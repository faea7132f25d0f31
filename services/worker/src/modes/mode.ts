import type { ClaimedBatch, Db } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { WorkerConfig } from '../config.js'
import type { DatabaseClock } from '../loop/clock.js'
import type { WorkerObserver } from '../observer.js'
import type { OrderProcessor } from '../processor.js'
import type { FollowUp } from './report.js'

// The two processing modes behind one interface: the drainer (loop/drainer.ts) runs batches of
// either the same way. transaction.ts and lease.ts say how each claims, processes and settles.

/** How many orders a batch claims: `limit` now, and `next` in a claim made ahead with its commit. */
export interface ClaimSize {
  limit: number
  next: number
}

/**
 * What a batch came to. `dueAt`: the earliest order it scheduled, so the worker promotes it on
 * time; `promoted`: orders it made due now (the next orders of keys whose head it completed), so the
 * worker drains again.
 */
export interface BatchResult extends FollowUp {
  /** Orders the claim took: a full batch means the queue may hold more. */
  claimed: number
  /**
   * Transaction mode: the next batch, already claimed with this one's commit. Whoever receives it
   * runs it (mode.run) or rolls it back.
   */
  claimedAhead?: ClaimedBatch
  /**
   * Transaction mode: how long the batch's orders took to process, and its settlement (with the
   * next claim) in the database. The drainer sizes its lanes by them.
   */
  timing?: { processingMs: number; settlingMs: number }
}

/** A processing mode: one batch at a time, claimed now or ahead by the batch before it. */
export interface Mode {
  run(size: ClaimSize, claimedAhead?: ClaimedBatch): Promise<BatchResult>
}

/** What a mode needs. */
export interface ModeDeps {
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
  /** The graceful stop's first step: claim nothing more, start no more orders; settle those in hand. */
  stopClaiming: AbortSignal
  /** The forced stop: abandon the orders in hand (a transaction-mode batch rolls back). */
  abandonWork: AbortSignal
}
