import { type Db, notifyOrdersWaiting } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { WorkerConfig } from '../config.js'
import { leaseMode } from '../modes/lease.js'
import type { ModeDeps } from '../modes/mode.js'
import { transactionMode } from '../modes/transaction.js'
import { ignoreProgress, type WorkerObserver } from '../observer.js'
import type { OrderProcessor } from '../processor.js'
import { DatabaseClock } from './clock.js'
import { createDrainer, type Drainer } from './drainer.js'
import { Promoter } from './promoter.js'
import { createSchedule, type Schedule } from './schedule.js'
import { createWakeups, type Wakeups } from './wakeups.js'

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
 * The worker loop, wired from its parts: the drainer runs batches of the configured mode until
 * nothing is claimable (drainer.ts; modes/); a drain starts on the schedule's tick (schedule.ts), on
 * a wake-up (wakeups.ts), or when the promoter (promoter.ts) made orders due. Stopping is two steps,
 * as River stops: first stop claiming (no order starts), then, past the shutdown timeout, abandon
 * the work in hand.
 */
export function createWorker(deps: WorkerDeps): Worker {
  const loop = wireLoop(deps)
  let started: Promise<void> | undefined
  return {
    start() {
      started ??= startLoop(loop, deps)
      return started
    },
    stop: () => stopLoop(loop, deps),
    drain: loop.drainer.drain,
  }
}

interface Loop {
  stopClaiming: AbortController
  abandonWork: AbortController
  drainer: Drainer
  promoter: Promoter
  wakeups: Wakeups
  schedule: Schedule
}

function wireLoop({ db, processor, config, log, observer = ignoreProgress, othersAlive = () => 0 }: WorkerDeps): Loop {
  const stopClaiming = new AbortController()
  const abandonWork = new AbortController()
  const signals = { stopClaiming: stopClaiming.signal, abandonWork: abandonWork.signal }
  const clock = new DatabaseClock()
  const modeDeps: ModeDeps = { db, processor, config, log, observer, clock, ...signals }
  const drainer = createDrainer({
    mode: config.mode === 'lease' ? leaseMode(modeDeps) : transactionMode(modeDeps),
    config,
    othersAlive,
    log,
    ...signals,
    dueAt: (at) => promoter.dueAt(at),
    // The LISTEN connection died with the database.
    recovered: () => void wakeups.renew(),
  })
  const promoter = new Promoter({
    db,
    clock,
    log,
    observer,
    onPromoted() {
      void drainer.drain()
      // The rest of the fleet drains them too, rather than at its next tick.
      notifyOrdersWaiting(db).catch(() => {})
    },
  })
  const wakeups = createWakeups({
    db,
    log,
    onWake: (dueAt) => (dueAt ? promoter.dueAt(dueAt) : void drainer.drain()),
  })
  const schedule = createSchedule({
    cron: config.cron,
    name: `drain ${config.workerId}`,
    jitterMs: config.jitterMs,
    log,
    async onTick() {
      await wakeups.ensure()
      await promoter.run()
      await drainer.drain()
    },
  })
  return { stopClaiming, abandonWork, drainer, promoter, wakeups, schedule }
}

async function startLoop({ schedule, wakeups, promoter, drainer }: Loop, { config, log }: WorkerDeps): Promise<void> {
  schedule.start()
  await wakeups.ensure()
  await promoter.run()
  void drainer.drain()
  log.info(
    { mode: config.mode, cron: config.cron, batchSize: config.batchSize, maxBatchSize: config.maxBatchSize },
    'worker started',
  )
}

async function stopLoop(loop: Loop, { config, log }: WorkerDeps): Promise<void> {
  const { stopClaiming, abandonWork, drainer, promoter, wakeups, schedule } = loop
  if (stopClaiming.signal.aborted) return
  stopClaiming.abort()
  promoter.stop()
  await schedule.stop()
  await wakeups.close()
  const running = drainer.inFlight()
  if (running && !(await settlesWithin(running, config.shutdownTimeoutMs))) {
    log.warn({ timeoutMs: config.shutdownTimeoutMs }, 'batch still running at shutdown; rolling it back')
    abandonWork.abort(new Error('worker stopped'))
    // A processor notices the abort at once; a statement stuck in the database does not, and is
    // ended when the caller closes the pool, which rolls the transaction back.
    await settlesWithin(running, ABORT_GRACE_MS)
  }
  abandonWork.abort(new Error('worker stopped'))
  log.info('worker stopped')
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
