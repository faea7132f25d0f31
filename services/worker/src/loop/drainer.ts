import { type ClaimedBatch, isDatabaseUnavailable } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { WorkerConfig } from '../config.js'
import type { BatchResult, Mode } from '../modes/mode.js'

export interface Drainer {
  /** Drains until nothing is claimable. Joins a drain in progress, which then looks once more. Never rejects. */
  drain(): Promise<void>
  /** The drain in progress, if any: what a stop waits for. */
  inFlight(): Promise<void> | undefined
}

export interface DrainerDeps {
  /** Runs each batch, in either mode. */
  mode: Mode
  config: Pick<WorkerConfig, 'batchSize' | 'maxBatchSize' | 'batchesInFlight'>
  /** The other workers of this mode alive in the fleet (process/fleet.ts). */
  othersAlive: () => number
  log: Logger
  /** The graceful stop's first step: no batch starts after it, and no drain passes again. */
  stopClaiming: AbortSignal
  /** The forced stop: the failure it causes (the batch's rollback) is expected, so not logged. */
  abandonWork: AbortSignal
  /** A batch scheduled an order (a retry, a key's next order due later): the promoter's timer must fire then. */
  dueAt(at: Date): void
  /** A batch completed after the database was found unavailable: what died with it can be renewed. */
  recovered(): void
}

/**
 * The worker's one drainer. Drains coalesce: a tick, a wake-up and the promoter all ask for drains,
 * often at once, and one drain at a time serves them all; a request during a drain makes it pass
 * once more when it ends, however many came, so an order that arrived mid-drain is not left waiting
 * for the next tick.
 *
 * A drain runs lanes of batches (drainInLanes). A failed drain is logged and left to the next
 * request. An outage fails every drain until it ends, so it is said once ('database unavailable'),
 * and its end once ('database reachable again', then `recovered`), at the first batch that completes.
 */
export function createDrainer(deps: DrainerDeps): Drainer {
  let inFlight: Promise<void> | undefined
  let again = false
  let databaseDown = false

  function afterBatch(result: BatchResult): void {
    if (result.dueAt) deps.dueAt(result.dueAt)
    // The next orders of keys whose head just completed: claimable now, by this drain's next pass.
    if (result.promoted) again = true
    if (databaseDown) {
      databaseDown = false
      deps.log.info('database reachable again')
      deps.recovered()
    }
  }

  async function drainUntilEmpty(): Promise<void> {
    do {
      again = false
      await drainInLanes(deps, afterBatch)
    } while (again && !deps.stopClaiming.aborted)
  }

  function failed(err: unknown): void {
    if (deps.abandonWork.aborted) return // the forced stop's rollback, expected
    if (isDatabaseUnavailable(err)) {
      // Back off until the next tick; say so once per outage, not once per tick.
      if (!databaseDown) deps.log.warn({ err }, 'database unavailable; retrying on the next tick')
      databaseDown = true
    } else {
      deps.log.error({ err }, 'drain failed; retrying on the next tick')
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

/**
 * The lanes a drain wants after a full batch: WORKER_BATCHES_IN_FLIGHT, but one while another
 * transaction-mode worker is alive and the batch took less time to process than to settle.
 *
 * A batch in flight holds its rows locked, and every other claim walks past them (SKIP LOCKED), so
 * each lane costs every claim of the fleet some server time. Alone, a second lane pays for that:
 * the database would sit idle while the worker processes. In a fleet, the other workers' batches
 * keep the database busy, and when processing is the short part of a batch's cycle, a second lane
 * only adds contention (docs/performance.md, Levers: 3 processes, no-op processor, up to +23%). A
 * processor that waits longer than the database does (I/O) keeps every lane: they overlap the wait.
 */
export function lanesWanted(batch: BatchResult, maxLanes: number, othersAlive: () => number): number {
  const timing = batch.timing
  if (timing === undefined || timing.processingMs >= timing.settlingMs) return maxLanes
  return othersAlive() === 0 ? maxLanes : 1
}

/**
 * Drains with up to WORKER_BATCHES_IN_FLIGHT batches at once: while one waits on the database (its
 * claim, its commit's WAL flush), another's orders are processed, and concurrent commits share one
 * flush. A lane opens only when a claim comes back full, so a wake-up for one order costs a worker
 * one claim, not one per lane; and only while the drain wants it (lanesWanted), or it retires.
 * Settles when every lane has found less than a full batch; rejects with the first failure, once
 * every lane has ended.
 *
 * A lane's claims grow while they come back full (WORKER_BATCH_SIZE, twice that, ... up to
 * WORKER_MAX_BATCH_SIZE): a deep queue is taken in fewer, larger batches, and every claim walks past
 * the rows the fleet's other batches hold locked, so fewer claims cost the server less
 * (docs/performance.md). A trickle is still claimed WORKER_BATCH_SIZE at a time, so a burst is
 * spread over the fleet.
 */
export function drainInLanes(deps: DrainerDeps, afterBatch: (result: BatchResult) => void): Promise<void> {
  const { batchSize, maxBatchSize, batchesInFlight: maxLanes } = deps.config
  return new Promise((resolve, reject) => {
    let open = 0
    let retiring = 0
    let failure: { err: unknown } | undefined
    const lane = async (): Promise<void> => {
      let claimedAhead: ClaimedBatch | undefined
      let limit = batchSize
      // A lane the drain no longer wants runs the batch it claimed ahead, without claiming another.
      let retire = false
      try {
        while (!deps.stopClaiming.aborted && failure === undefined) {
          const grown = Math.max(limit, Math.min(limit * 2, maxBatchSize))
          const result = await deps.mode.run({ limit, next: retire ? 0 : grown }, claimedAhead)
          claimedAhead = result.claimedAhead
          afterBatch(result)
          if (retire || result.claimed < limit) return
          limit = grown
          const wanted = lanesWanted(result, maxLanes, deps.othersAlive)
          if (open - retiring > wanted) {
            if (claimedAhead === undefined) return
            retire = true
            retiring += 1
          } else if (open < wanted) openLane()
        }
      } finally {
        if (retire) retiring -= 1
        // A batch claimed ahead that this lane will not run goes back, unattempted.
        await claimedAhead?.tx.rollback()
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
