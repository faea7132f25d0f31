import { type Db, isDatabaseUnavailable, listenForOrders, type Subscription } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import cron, { type ScheduledTask } from 'node-cron'
import type { WorkerConfig } from './config.js'
import type { OrderProcessor } from './processor.js'
import { runLeaseBatch } from './lease-batch.js'
import { ignoreProgress, type WorkerObserver } from './outcomes.js'
import { runTransactionBatch } from './transaction-batch.js'

export interface WorkerDeps {
  db: Db
  processor: OrderProcessor
  config: WorkerConfig
  log: Logger
  /** Told of every claim and settled order (fleet counters, metrics). */
  observer?: WorkerObserver
}

export interface Worker {
  /** Starts the schedule and drains once right away. */
  start(): void
  /**
   * Stops claiming and starting orders, lets the orders in hand finish for up to
   * `shutdownTimeoutMs`, then aborts them (in transaction mode the batch rolls back, so its orders
   * are claimable again at once). Never rejects.
   */
  stop(): Promise<void>
  /** Drains now: claims and processes batches until nothing is claimable. Joins a drain in progress. */
  drain(): Promise<void>
}

export function createWorker({ db, processor, config, log, observer = ignoreProgress }: WorkerDeps): Worker {
  const runBatch = config.mode === 'lease' ? runLeaseBatch : runTransactionBatch
  // Two steps, as River stops: first stop starting orders (draining), then, past the shutdown
  // timeout, abandon the ones in hand (stop).
  const drainingController = new AbortController()
  const stopController = new AbortController()
  let task: ScheduledTask | undefined
  let draining: Promise<void> | undefined
  // Set when a drain is requested while one runs: the running drain makes one more pass, so an
  // order that arrived mid-drain is not left waiting for the next tick.
  let drainAgain = false
  let databaseDown = false
  let stopped = false
  let subscription: Subscription | undefined
  let subscribing: Promise<void> | undefined

  async function drainUntilEmpty(): Promise<void> {
    do {
      drainAgain = false
      await drainInLanes()
    } while (drainAgain && !stopped)
  }

  /**
   * Up to `batchesInFlight` batches at once: while one waits on the database (its claim, its
   * commit's WAL flush), another's orders are processed, and concurrent commits share one flush.
   * A lane opens only when a claim comes back full, so a wake-up for one order costs each worker
   * one claim, not one per lane. Settles when every lane has found the queue empty.
   */
  function drainInLanes(): Promise<void> {
    return new Promise((resolve, reject) => {
      let open = 0
      let failure: { err: unknown } | undefined
      const openLane = () => {
        open += 1
        drainLane(() => {
          if (open < config.batchesInFlight && !stopped) openLane()
        })
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

  async function drainLane(onFullClaim: () => void): Promise<void> {
    const laneObserver: WorkerObserver = {
      claimed(count) {
        observer.claimed(count)
        if (count === config.batchSize) onFullClaim()
      },
      settled: (event) => observer.settled(event),
      leaseLost: (orderId) => observer.leaseLost(orderId),
    }
    for (;;) {
      if (stopped) return
      const claimed = await runBatch({
        db,
        processor,
        config,
        log,
        observer: laneObserver,
        draining: drainingController.signal,
        stop: stopController.signal,
      })
      if (databaseDown) {
        log.info('database reachable again')
        // The LISTEN connection died with the outage, and postgres.js tries to restore it only
        // once, maybe too early: subscribe afresh.
        void subscribe()
      }
      databaseDown = false
      if (claimed < config.batchSize) return
    }
  }

  function drain(): Promise<void> {
    if (draining) {
      drainAgain = true
      return draining
    }
    draining = drainUntilEmpty()
      .catch((err: unknown) => {
        if (stopController.signal.aborted) return // the forced stop's rollback, expected
        if (isDatabaseUnavailable(err)) {
          // Back off until the next tick; say so once per outage, not once per tick.
          if (!databaseDown) log.warn({ err }, 'database unavailable; retrying on the next tick')
          databaseDown = true
        } else {
          log.error({ err }, 'drain failed; retrying on the next tick')
        }
      })
      .finally(() => {
        draining = undefined
      })
    return draining
  }

  /**
   * Wake-ups: a NOTIFY from the api starts a drain at once, so pickup takes milliseconds rather
   * than a cron interval. The schedule stays as the safety net: a lost notification (or a dead
   * LISTEN connection) costs at most one tick.
   */
  function subscribe(): Promise<void> {
    subscribing ??= (async () => {
      const previous = subscription
      subscription = undefined
      await previous?.unsubscribe().catch(() => {})
      if (stopped) return
      try {
        subscription = await listenForOrders(db, () => void drain())
      } catch (err) {
        log.debug({ err }, 'could not listen for wake-ups; polling until the next tick')
      }
    })().finally(() => {
      subscribing = undefined
    })
    return subscribing
  }

  async function tick(): Promise<void> {
    if (subscription === undefined) await subscribe()
    await drain()
  }

  return {
    start() {
      if (task || stopped) return
      task = cron.schedule(config.cron, tick, {
        name: `drain ${config.workerId}`,
        noOverlap: true,
        maxRandomDelay: config.jitterMs,
        logger: cronLogger(log),
      })
      void tick()
      log.info({ mode: config.mode, cron: config.cron, batchSize: config.batchSize }, 'worker started')
    },

    async stop() {
      if (stopped) return
      stopped = true
      drainingController.abort()
      await task?.destroy()
      task = undefined
      await subscription?.unsubscribe().catch(() => {})
      subscription = undefined
      const inFlight = draining
      if (inFlight && !(await settlesWithin(inFlight, config.shutdownTimeoutMs))) {
        log.warn({ timeoutMs: config.shutdownTimeoutMs }, 'batch still running at shutdown; rolling it back')
        stopController.abort(new Error('worker stopped'))
        // A processor notices the abort at once; a statement stuck in the database does not, and is
        // ended when the caller closes the pool, which rolls the transaction back.
        await settlesWithin(inFlight, ABORT_GRACE_MS)
      }
      stopController.abort(new Error('worker stopped'))
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

/** node-cron's own warnings (e.g. a missed tick on a blocked event loop) go through pino. */
function cronLogger(log: Logger) {
  return {
    info: (message: string) => log.debug({ source: 'node-cron' }, message),
    // A tick skipped because the drain still runs is noOverlap doing its job, not a problem; at warn
    // it would be a line a second for as long as a backlog lasts.
    warn: (message: string) =>
      /overlap/i.test(message) ? log.debug({ source: 'node-cron' }, message) : log.warn({ source: 'node-cron' }, message),
    error: (message: string | Error, err?: Error) => log.error({ source: 'node-cron', err: err ?? message }, 'node-cron error'),
    debug: (message: string | Error) => log.debug({ source: 'node-cron' }, String(message)),
  }
}
