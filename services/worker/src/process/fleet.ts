import os from 'node:os'
import {
  countOtherWorkersAlive,
  type Db,
  markWorkerStopped,
  recordHeartbeat,
  registerWorker,
  type WorkerIdentity,
} from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { WorkerConfig } from '../config.js'
import type { OrderSettled, WorkerObserver } from '../observer.js'

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

type FleetConfig = Pick<WorkerConfig, 'workerId' | 'mode' | 'heartbeatMs'>

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
  config: FleetConfig
  log: Logger
}): Promise<FleetMembership> {
  const member = new FleetMember(db, config, log)
  await member
    .beat()
    .catch((err: unknown) => log.warn({ err }, 'could not register in the fleet; retrying with the heartbeat'))
  const timer = setInterval(() => {
    member.beat().catch((err: unknown) => log.debug({ err }, 'heartbeat failed; its counts go with the next one'))
  }, config.heartbeatMs)
  timer.unref()
  // The first drain starts knowing the fleet (of the workers registered so far).
  if (member.registered) await member.countOthers()

  return {
    othersAlive: () => member.othersAlive(),
    observer: {
      claimed() {},
      settled: ({ outcome }) => member.settled(outcome),
      leaseLost() {},
    },
    async leave() {
      clearInterval(timer)
      await member.beat().catch(() => {})
      await markWorkerStopped(db, config.workerId).catch((err: unknown) => log.warn({ err }, 'could not mark stopped'))
    },
  }
}

/** The counts a worker reports to the fleet, and the count of the others it reads back. */
class FleetMember {
  registered = false
  readonly #totals = { processed: 0, failed: 0 }
  readonly #unsent = { completed: 0, failed: 0 }
  readonly #others = { alive: 0, countedAt: Number.NEGATIVE_INFINITY, counting: false }
  readonly #identity: WorkerIdentity
  readonly #db: Db
  readonly #log: Logger

  constructor(db: Db, config: FleetConfig, log: Logger) {
    this.#db = db
    this.#log = log
    this.#identity = {
      id: config.workerId,
      host: os.hostname(),
      pid: process.pid,
      mode: config.mode,
      heartbeatMs: config.heartbeatMs,
    }
  }

  async beat(): Promise<void> {
    if (!this.registered) {
      await registerWorker(this.#db, this.#identity)
      this.registered = true
    }
    const sending = { ...this.#unsent }
    await recordHeartbeat(this.#db, {
      ...this.#identity,
      ...this.#totals,
      completedSince: sending.completed,
      failedSince: sending.failed,
    })
    this.#unsent.completed -= sending.completed
    this.#unsent.failed -= sending.failed
  }

  settled(outcome: OrderSettled['outcome']): void {
    if (outcome === 'completed') {
      this.#totals.processed++
      this.#unsent.completed++
    } else {
      this.#totals.failed++
      this.#unsent.failed++
    }
  }

  othersAlive(): number {
    const others = this.#others
    if (!others.counting && performance.now() - others.countedAt >= RECOUNT_MS) void this.countOthers()
    return others.alive
  }

  async countOthers(): Promise<void> {
    const others = this.#others
    others.counting = true
    try {
      others.alive = await countOtherWorkersAlive(this.#db, this.#identity)
      others.countedAt = performance.now()
    } catch (err) {
      this.#log.debug({ err }, 'could not count the fleet; asking again on the next call')
    } finally {
      others.counting = false
    }
  }
}
