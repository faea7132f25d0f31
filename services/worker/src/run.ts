import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { closeDb, createDb } from '@postgres-queue/db'
import { ConfigError, createLogger } from '@postgres-queue/runtime'
import closeWithGrace from 'close-with-grace'
import { loadConfig } from './config.js'
import type { OrderProcessor } from './processor.js'
import { joinFleet } from './fleet.js'
import { scheduleMaintenance } from './maintenance.js'
import { createWorkerMetrics, serveMetrics } from './metrics.js'
import { observeAll } from './outcomes.js'
import { createWorker } from './worker.js'

/** Margin for the server-side transaction bounds over the client-side order timeout. */
const SERVER_BOUND_MARGIN_MS = 5000

/**
 * A worker process: config, logger, pool, worker, signals. `main.ts` calls it with the team's
 * processor; a test can call it with its own.
 */
export async function runWorker(env: NodeJS.ProcessEnv, processor: OrderProcessor): Promise<void> {
  let config
  try {
    config = loadConfig(env, { hostname: os.hostname(), pid: process.pid, instance: randomBytes(2).toString('hex') })
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    console.error(err.message)
    process.exit(2)
  }
  const log = createLogger(config.log)
  const db = createDb(config.databaseUrl, {
    // One per batch in flight, plus two for heartbeats, lease completions and retention.
    maxConnections: config.batchesInFlight + 2,
    applicationName: `postgres-queue worker ${config.workerId}`,
    // Nothing a worker runs may hold a transaction open past the order timeout: not a statement,
    // and not an idle gap while a processor (or a frozen process) keeps the batch waiting.
    statementTimeoutMs: config.orderTimeoutMs + SERVER_BOUND_MARGIN_MS,
    idleInTransactionTimeoutMs: config.orderTimeoutMs + SERVER_BOUND_MARGIN_MS,
  })
  const fleet = await joinFleet({ db, config, log })
  const metrics = createWorkerMetrics({ workerId: config.workerId, mode: config.mode })
  const metricsServer = config.metricsPort === undefined ? undefined : await serveMetrics(metrics.registry, config.metricsPort)
  const maintenance = scheduleMaintenance({ db, config, log })
  const worker = createWorker({ db, processor, config, log, observer: observeAll(fleet.observer, metrics.observer) })

  closeWithGrace(
    // The worker bounds its own stop; this outer limit only catches a bug in it.
    { delay: config.shutdownTimeoutMs + 10_000, logger: { error: (message: string) => log.error(message) } },
    async ({ signal, err }) => {
      if (err) log.error({ err }, 'worker crashed; stopping')
      else log.info({ signal }, 'stopping')
      await Promise.all([worker.stop(), maintenance.stop()])
      await fleet.leave()
      metricsServer?.close()
      await closeDb(db, 0)
    },
  )
  worker.start()
}
