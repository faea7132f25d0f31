import os from 'node:os'
import { countOtherWorkersAlive, type Db, markWorkerStopped, recordHeartbeat, registerWorker } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { WorkerConfig } from './config.js'
import type { WorkerObserver } from './outcomes.js'

/** How old a count of the fleet may be before othersAlive counts again. */
const RECOUNT_MS = 1000

export interface FleetMembership {
  /** Counts settled orders for the heartbeat. */
  observer: WorkerObserver
  /**
   * The other workers of this mode alive, as last counted (0 before the first count). A call finds
   * the count older than RECOUNT_MS counts again, in the background: asked after every full batch,
   * it notices a worker joining or leaving within about a second, at one query a second at most.
   */
  othersAlive(): number
  /** Marks the worker stopped (a graceful exit, as opposed to going silent). */
  leave(): Promise<void>
}

/**
 * The worker's row in `workers`: registered at start, then a heartbeat every `heartbeatMs` with
 * its totals and what it settled since the last beat (into the 5-second throughput buckets). A
 * heartbeat that fails (database away) is not lost: its counts go with the next one.
 */
export async function joinFleet({
  db,
  config,
  log,
}: {
  db: Db
  config: Pick<WorkerConfig, 'workerId' | 'mode' | 'heartbeatMs'>
  log: Logger
}): Promise<FleetMembership> {
  const totals = { processed: 0, failed: 0 }
  const unsent = { completed: 0, failed: 0 }
  const identity = {
    id: config.workerId,
    host: os.hostname(),
    pid: process.pid,
    mode: config.mode,
    heartbeatMs: config.heartbeatMs,
  }
  let registered = false
  const others = { alive: 0, countedAt: Number.NEGATIVE_INFINITY, counting: false }

  async function beat(): Promise<void> {
    if (!registered) {
      await registerWorker(db, identity)
      registered = true
    }
    const sending = { ...unsent }
    await recordHeartbeat(db, {
      ...identity,
      ...totals,
      completedSince: sending.completed,
      failedSince: sending.failed,
    })
    unsent.completed -= sending.completed
    unsent.failed -= sending.failed
  }

  await beat().catch((err: unknown) =>
    log.warn({ err }, 'could not register in the fleet; retrying with the heartbeat'),
  )
  const timer = setInterval(() => {
    beat().catch((err: unknown) => log.debug({ err }, 'heartbeat failed; its counts go with the next one'))
  }, config.heartbeatMs)
  timer.unref()

  async function count(): Promise<void> {
    others.counting = true
    try {
      others.alive = await countOtherWorkersAlive(db, identity)
      others.countedAt = performance.now()
    } catch (err) {
      log.debug({ err }, 'could not count the fleet; asking again on the next call')
    } finally {
      others.counting = false
    }
  }
  // The first drain starts knowing the fleet (of the workers registered so far).
  if (registered) await count()

  return {
    othersAlive() {
      if (!others.counting && performance.now() - others.countedAt >= RECOUNT_MS) void count()
      return others.alive
    },
    observer: {
      claimed() {},
      settled({ outcome }) {
        if (outcome === 'completed') {
          totals.processed++
          unsent.completed++
        } else {
          totals.failed++
          unsent.failed++
        }
      },
      leaseLost() {},
    },
    async leave() {
      clearInterval(timer)
      await beat().catch(() => {})
      await markWorkerStopped(db, config.workerId).catch((err: unknown) => log.warn({ err }, 'could not mark stopped'))
    },
  }
}
