import { type Db, notifyOrdersWaiting } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { BatchDeps } from './batch.js'
import { DatabaseClock } from './clock.js'
import type { WorkerConfig } from './config.js'
import { createDrainer } from './drains.js'
import { runLeaseBatch } from './lease-batch.js'
import { ignoreProgress, type WorkerObserver } from './outcomes.js'
import { runIsolatingPoison } from './poison.js'
import type { OrderProcessor } from './processor.js'
import { createPromoter } from './promoter.js'
import { createSchedule } from './schedule.js'
import { createWakeups } from './wakeups.js'

export interface WorkerDeps {
  db: Db
  processor: OrderProcessor
  config: WorkerConfig
  log: Logger
  /** Told of every claim and settled order (fleet counters, metrics). */
  observer?: WorkerObserver
  /** The other workers of its mode alive in the fleet (fleet.ts); none when not given. */
  othersAlive?: () => number
}

export interface Worker {
  /**
   * Starts the schedule and drains once right away. Resolves once the worker is consuming: it
   * listens for wake-ups (or, when it cannot, polls on its schedule) and has promoted what was due.
   */
  start(): Promise<void>
  /**
   * Stops claiming and starting orders, lets the orders in hand finish for up to
   * `shutdownTimeoutMs`, then aborts them (in transaction mode the batch rolls back, so its orders
   * are claimable again at once). Never rejects.
   */
  stop(): Promise<void>
  /** Drains now: claims and processes batches until nothing is claimable. Joins a drain in progress. */
  drain(): Promise<void>
}

/**
 * The worker loop, wired from its parts: lanes of batches drain the queue (drains.ts, lanes.ts); a
 * drain starts on the schedule's tick (schedule.ts), on a wake-up (wakeups.ts), or when the
 * promoter (promoter.ts) made orders due; stopping is two steps, as River stops: first start no
 * more orders, then, past the shutdown timeout, abandon the ones in hand.
 */
export function createWorker({
  db,
  processor,
  config,
  log,
  observer = ignoreProgress,
  othersAlive = () => 0,
}: WorkerDeps): Worker {
  const draining = new AbortController()
  const forced = new AbortController()
  const clock = new DatabaseClock()
  const deps: BatchDeps = {
    db,
    processor,
    config,
    log,
    observer,
    clock,
    draining: draining.signal,
    stop: forced.signal,
  }
  const drainer = createDrainer({
    maxLanes: config.batchesInFlight,
    othersAlive,
    batchSize: config.batchSize,
    maxBatchSize: config.maxBatchSize,
    runBatch:
      config.mode === 'lease'
        ? (size) => runLeaseBatch(deps, size)
        : (size, claimed) => runIsolatingPoison(deps, { size, claimed }),
    log,
    draining: draining.signal,
    forced: forced.signal,
    onBatch(result) {
      if (result.retryAt) promoter.dueAt(result.retryAt)
    },
    // The LISTEN connection died with the database.
    onRecovered: () => void wakeups.renew(),
  })
  const drain = drainer.drain
  const promoter = createPromoter({
    db,
    clock,
    log,
    observer,
    onPromoted() {
      void drain()
      // The rest of the fleet drains them too, rather than at its next tick.
      notifyOrdersWaiting(db).catch(() => {})
    },
  })
  const wakeups = createWakeups({ db, log, onWake: (dueAt) => (dueAt ? promoter.dueAt(dueAt) : void drain()) })
  const schedule = createSchedule({
    cron: config.cron,
    name: `drain ${config.workerId}`,
    jitterMs: config.jitterMs,
    log,
    async onTick() {
      await wakeups.ensure()
      await promoter.run()
      await drain()
    },
  })

  let started: Promise<void> | undefined
  return {
    start() {
      started ??= (async () => {
        schedule.start()
        await wakeups.ensure()
        await promoter.run()
        void drain()
        log.info(
          { mode: config.mode, cron: config.cron, batchSize: config.batchSize, maxBatchSize: config.maxBatchSize },
          'worker started',
        )
      })()
      return started
    },

    async stop() {
      if (draining.signal.aborted) return
      draining.abort()
      promoter.stop()
      await schedule.stop()
      await wakeups.close()
      const running = drainer.inFlight()
      if (running && !(await settlesWithin(running, config.shutdownTimeoutMs))) {
        log.warn({ timeoutMs: config.shutdownTimeoutMs }, 'batch still running at shutdown; rolling it back')
        forced.abort(new Error('worker stopped'))
        // A processor notices the abort at once; a statement stuck in the database does not, and is
        // ended when the caller closes the pool, which rolls the transaction back.
        await settlesWithin(running, ABORT_GRACE_MS)
      }
      forced.abort(new Error('worker stopped'))
      log.info('worker stopped')
    },

    drain,
  }
}

const ABORT_GRACE_MS = 1000

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const settled = await Promise.race([
    promise.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ])
  clearTimeout(timer)
  return settled
}
