import type { ClaimedBatch } from '@postgres-queue/db'
import type { BatchResult } from './batch.js'

/** How many orders a batch claims: `limit` now, and `next` in a claim made ahead with its commit. */
export interface ClaimSize {
  limit: number
  next: number
}

export interface LaneOptions {
  /** The most batches in flight at once (WORKER_BATCHES_IN_FLIGHT). */
  maxLanes: number
  /** A lane's first claim (WORKER_BATCH_SIZE). */
  batchSize: number
  /** A claim that comes back full doubles the lane's next one, up to this (WORKER_MAX_BATCH_SIZE). */
  maxBatchSize: number
  /** Runs a batch: the one the previous batch claimed with its commit, if any, else a new claim. */
  runBatch: (size: ClaimSize, claimed?: ClaimedBatch) => Promise<BatchResult>
  /** After each batch that completed (not one that threw). */
  onBatch: (result: BatchResult) => void
  /** Checked before every batch: a stop ends every lane after the batch in hand. */
  stopped: () => boolean
  /** The other workers of this mode alive in the fleet (fleet.ts). */
  othersAlive: () => number
}

/**
 * The lanes a drain wants after a full batch: `maxLanes`, but one while another transaction-mode
 * worker is alive and the batch took less time to process than to settle.
 *
 * A batch in flight holds its rows locked, and every other claim walks past them (SKIP LOCKED), so
 * each lane costs every claim of the fleet some server time. Alone, a second lane pays for that:
 * the database would sit idle while the worker processes. In a fleet, the other workers' batches
 * keep the database busy, and when processing is the short part of a batch's cycle, a second lane
 * only adds contention (docs/performance.md, Levers: 3 processes, no-op processor, up to +23%). A
 * processor that waits longer than the database does (I/O) keeps every lane: they overlap the wait.
 */
export function lanesWanted(
  batch: BatchResult,
  { maxLanes, othersAlive }: { maxLanes: number; othersAlive: () => number },
): number {
  const timing = batch.timing
  if (timing === undefined || timing.processingMs >= timing.settlingMs) return maxLanes
  return othersAlive() === 0 ? maxLanes : 1
}

/**
 * Drains with up to `maxLanes` batches at once: while one waits on the database (its claim, its
 * commit's WAL flush), another's orders are processed, and concurrent commits share one flush. A
 * lane opens only when a claim comes back full, so a wake-up for one order costs a worker one
 * claim, not one per lane; and only while the drain wants it (lanesWanted), or it retires.
 * Settles when every lane has found less than a full batch; rejects with the first failure, once
 * every lane has ended.
 *
 * A lane's claims grow while they come back full (batchSize, twice that, ... up to maxBatchSize):
 * a deep queue is taken in fewer, larger batches, and every claim walks past the rows the fleet's
 * other batches hold locked, so fewer claims cost the server less (docs/performance.md). A trickle
 * is still claimed `batchSize` at a time, so a burst is spread over the fleet.
 */
export function drainInLanes({
  maxLanes,
  batchSize,
  maxBatchSize,
  runBatch,
  onBatch,
  stopped,
  othersAlive,
}: LaneOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    let open = 0
    let retiring = 0
    let failure: { err: unknown } | undefined
    const lane = async (): Promise<void> => {
      let next: ClaimedBatch | undefined
      let limit = batchSize
      // A lane the drain no longer wants runs the batch it claimed ahead, without claiming another.
      let retire = false
      try {
        while (!stopped() && failure === undefined) {
          const grown = Math.max(limit, Math.min(limit * 2, maxBatchSize))
          const result = await runBatch({ limit, next: retire ? 0 : grown }, next)
          next = result.next
          onBatch(result)
          if (retire || result.claimed < limit) return
          limit = grown
          const wanted = lanesWanted(result, { maxLanes, othersAlive })
          if (open - retiring > wanted) {
            if (next === undefined) return
            retire = true
            retiring += 1
          } else if (open < wanted) openLane()
        }
      } finally {
        if (retire) retiring -= 1
        // A batch claimed ahead that this lane will not run goes back, unattempted.
        await next?.tx.rollback()
      }
    }
    const openLane = () => {
      open += 1
      lane()
        .catch((err: unknown) => {
          failure ??= { err }
        })
        .finally(() => {
          open -= 1
          if (open === 0) failure ? reject(failure.err) : resolve()
        })
    }
    openLane()
  })
}
