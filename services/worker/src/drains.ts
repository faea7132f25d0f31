import { type ClaimedBatch, isDatabaseUnavailable } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { BatchResult } from './batch.js'
import { type ClaimSize, drainInLanes } from './lanes.js'

export interface Drainer {
  /** Drains until nothing is claimable. Joins a drain in progress, which then looks once more. Never rejects. */
  drain(): Promise<void>
  /** The drain in progress, if any: what a stop waits for. */
  inFlight(): Promise<void> | undefined
}

export interface DrainerOptions {
  /** The most batches in flight at once, and the size of their claims (lanes.ts). */
  maxLanes: number
  /** The other workers of this mode alive in the fleet (lanes.ts, lanesWanted). */
  othersAlive: () => number
  batchSize: number
  maxBatchSize: number
  runBatch: (size: ClaimSize, claimed?: ClaimedBatch) => Promise<BatchResult>
  log: Logger
  /** Graceful stop: no batch starts after it, and no drain passes again. */
  draining: AbortSignal
  /** Forced stop: the failure it causes (the batch's rollback) is expected, so not logged. */
  forced: AbortSignal
  /** After each batch that completed, before any recovery is reported. */
  onBatch: (result: BatchResult) => void
  /** A batch completed after the database was found unavailable: what died with it can be renewed. */
  onRecovered: () => void
}

/**
 * Drains coalesced: a tick, a wake-up and the promoter all ask for drains, often at once, and one
 * drain at a time serves them all. A request during a drain makes it pass once more when it ends,
 * however many came, so an order that arrived mid-drain is not left waiting for the next tick.
 *
 * A failed drain is logged and left to the next request. An outage fails every drain until it
 * ends, so it is said once ('database unavailable'), and its end once ('database reachable
 * again', then `onRecovered`), at the first batch that completes.
 */
export function createDrainer({
  maxLanes,
  othersAlive,
  batchSize,
  maxBatchSize,
  runBatch,
  log,
  draining,
  forced,
  onBatch,
  onRecovered,
}: DrainerOptions): Drainer {
  let inFlight: Promise<void> | undefined
  let again = false
  let databaseDown = false

  function afterBatch(result: BatchResult): void {
    onBatch(result)
    if (databaseDown) {
      databaseDown = false
      log.info('database reachable again')
      onRecovered()
    }
  }

  async function drainUntilEmpty(): Promise<void> {
    do {
      again = false
      await drainInLanes({
        maxLanes,
        batchSize,
        maxBatchSize,
        runBatch,
        onBatch: afterBatch,
        stopped: () => draining.aborted,
        othersAlive,
      })
    } while (again && !draining.aborted)
  }

  function failed(err: unknown): void {
    if (forced.aborted) return // the forced stop's rollback, expected
    if (isDatabaseUnavailable(err)) {
      // Back off until the next tick; say so once per outage, not once per tick.
      if (!databaseDown) log.warn({ err }, 'database unavailable; retrying on the next tick')
      databaseDown = true
    } else {
      log.error({ err }, 'drain failed; retrying on the next tick')
    }
  }

  function drain(): Promise<void> {
    if (inFlight) {
      again = true
      return inFlight
    }
    inFlight = drainUntilEmpty()
      .catch(failed)
      .finally(() => {
        inFlight = undefined
      })
    return inFlight
  }

  return { drain, inFlight: () => inFlight }
}
