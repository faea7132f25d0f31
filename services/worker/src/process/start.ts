import {
  assertMigrated,
  closeDb,
  createDb,
  type Db,
  migrateDatabase,
  STALLED_CONNECTION,
  stallLimitMs,
  watchForStalls,
} from '@postgres-queue/db'
import { createLogger, type Logger } from '@postgres-queue/runtime'
import type { WorkerConfig } from '../config.js'
import { createWorker } from '../loop/worker.js'
import { observeAll } from '../observer.js'
import type { OrderProcessor } from '../processor.js'
import { joinFleet } from './fleet.js'
import { scheduleMaintenance } from './maintenance.js'
import { createWorkerMetrics, serveMetrics, type WorkerMetrics } from './metrics.js'

/** Margin for the server-side transaction bounds over the client-side order timeout. */
const SERVER_BOUND_MARGIN_MS = 5000

export interface StartWorkerOptions {
  /** The team's code: what to do with each order. */
  processor: OrderProcessor
  /** The worker's settings: `loadConfig(process.env)` reads them as the configuration table says. */
  config: Readonly<WorkerConfig>
  /** Defaults to a pino logger built from the config's LOG_LEVEL and LOG_FORMAT. */
  log?: Logger
  /**
   * Called once (after an error line in the log) if a call to the database goes unanswered longer
   * than the server itself would let it run: its connection stopped carrying anything without
   * closing, and the batch on it cannot end. runWorker exits 1 then, so that the orchestrator
   * starts a process with fresh connections; an embedded worker only logs it unless given this.
   */
  onStalled?: (stall: { unansweredMs: number; limitMs: number }) => void
  /**
   * Migrate the database first (migrateDatabase: safe beside other processes doing the same). By
   * default a worker only checks, and refuses to start on a schema that is not migrated, or behind.
   */
  migrate?: boolean
}

/** A worker running inside the caller's process. */
export interface RunningWorker {
  /** Its worker id: in logs and in completedBy. */
  readonly id: string
  readonly config: Readonly<WorkerConfig>
  /** Its Prometheus metrics (served on METRICS_PORT when set). */
  readonly metrics: WorkerMetrics['registry']
  /** Claims and processes now until nothing is due (joins a drain in progress). */
  drain(): Promise<void>
  /**
   * Stops: starts no more orders, lets the ones in hand finish within WORKER_SHUTDOWN_TIMEOUT_MS
   * (then rolls them back), leaves the fleet and closes its connections. Never rejects; a second
   * call returns the first one's promise.
   */
  stop(): Promise<void>
}

/**
 * Starts a worker in this process and resolves once it is consuming (listening for wake-ups, its
 * first drain under way). It touches nothing process-wide: no signal handlers, no exit; the caller
 * decides when to stop it. `runWorker` is the process entry point built on it.
 *
 * ```ts
 * const worker = await startWorker({ processor: myProcessor, config: loadConfig(process.env) })
 * // ...
 * await worker.stop()
 * ```
 */
export async function startWorker({
  processor,
  config,
  log: given,
  onStalled,
  migrate = false,
}: StartWorkerOptions): Promise<RunningWorker> {
  const log = given ?? createLogger(config.log)
  const { db, stalls } = openDatabase(config, log, onStalled)
  const metrics = createWorkerMetrics({ worker: config.workerName, mode: config.mode })
  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined
  try {
    // Refused at once with a line saying why, rather than consuming and failing every batch.
    if (migrate) await migrateDatabase(config.databaseUrl, { schema: config.databaseSchema })
    else await assertMigrated(db)
    metricsServer =
      config.metricsPort === undefined ? undefined : await serveMetrics(metrics.registry, config.metricsPort)
  } catch (err) {
    stalls.stop()
    await closeDb(db, 0)
    throw err
  }
  const fleet = await joinFleet({ db, config, log })
  const maintenance = scheduleMaintenance({ db, config, log })
  const worker = createWorker({
    db,
    processor,
    config,
    log,
    observer: observeAll(fleet.observer, metrics.observer),
    othersAlive: fleet.othersAlive,
  })
  await worker.start()

  let stopping: Promise<void> | undefined
  return {
    id: config.workerId,
    config,
    metrics: metrics.registry,
    drain: () => worker.drain(),
    stop() {
      stopping ??= (async () => {
        stalls.stop()
        await Promise.all([worker.stop(), maintenance.stop()])
        await fleet.leave()
        metricsServer?.close()
        await closeDb(db, 0)
      })()
      return stopping
    },
  }
}

/** The worker's pool, with its server-side bounds, watched for stalls from its first call. */
function openDatabase(
  config: Readonly<WorkerConfig>,
  log: Logger,
  onStalled: StartWorkerOptions['onStalled'],
): { db: Db; stalls: ReturnType<typeof watchForStalls> } {
  const statementTimeoutMs = config.orderTimeoutMs + SERVER_BOUND_MARGIN_MS
  const db = createDb(config.databaseUrl, {
    schema: config.databaseSchema,
    // Per batch in flight, its transaction and its lease heartbeat; two more for the promoter,
    // the fleet heartbeat and retention.
    maxConnections: 2 * config.batchesInFlight + 2,
    applicationName: `postgres-queue worker ${config.workerId}`,
    // Nothing a worker runs may hold a transaction open past the order timeout: not a statement,
    // and not an idle gap while a processor (or a frozen process) keeps the batch waiting.
    statementTimeoutMs,
    idleInTransactionTimeoutMs: statementTimeoutMs,
  })
  // Watching from the first call: a start-up that waits on a silent connection is a stall too.
  const stalls = watchForStalls({
    db,
    limitMs: stallLimitMs(statementTimeoutMs),
    onStalled(stall) {
      log.error(stall, STALLED_CONNECTION)
      onStalled?.(stall)
    },
  })
  return { db, stalls }
}
