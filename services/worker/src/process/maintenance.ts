import { setTimeout as sleep } from 'node:timers/promises'
import {
  type Db,
  deleteExpiredIdempotencyKeys,
  deleteExpiredOrders,
  deleteIdleOrderingKeys,
  deleteStaleWorkers,
} from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import cron from 'node-cron'
import type { WorkerConfig } from '../config.js'

/** Forget a worker after an hour of silence; keep a day of throughput for the dashboard. */
const FORGET_WORKER_AFTER_MS = 60 * 60 * 1000
const KEEP_THROUGHPUT_MS = 24 * 60 * 60 * 1000
/** A breath between delete batches, so retention never hogs the database. */
const PAUSE_BETWEEN_BATCHES_MS = 50

export interface Maintenance {
  /** One run: delete expired orders batch by batch, then expired idempotency keys, idle ordering keys and stale fleet rows. */
  run(): Promise<void>
  stop(): Promise<void>
}

type RetentionConfig = Pick<
  WorkerConfig,
  'retentionCron' | 'retentionDays' | 'retentionBatchSize' | 'idempotencyKeyDays'
>

/**
 * Retention, on its own node-cron schedule in every worker: each delete batch takes a try-lock, so
 * exactly one worker deletes at a time and the others' runs end at once. Keeps the hot table
 * small: completed and cancelled orders older than `retentionDays` go; failed ones stay until
 * redriven or deleted by hand.
 */
export function scheduleMaintenance({
  db,
  config,
  log,
}: {
  db: Db
  config: RetentionConfig
  log: Logger
}): Maintenance {
  const stopping = new AbortController()
  const run = () => retain(db, config, log, stopping.signal)
  const task = cron.schedule(
    config.retentionCron,
    () => run().catch((err: unknown) => log.warn({ err }, 'retention failed; retrying on its next run')),
    { name: 'retention', noOverlap: true },
  )
  return {
    run,
    async stop() {
      stopping.abort()
      await task.destroy()
    },
  }
}

async function retain(db: Db, config: RetentionConfig, log: Logger, stopping: AbortSignal): Promise<void> {
  const batchSize = config.retentionBatchSize
  const inBatches = (deleteBatch: () => Promise<number | undefined>) =>
    deleteInBatches(deleteBatch, batchSize, stopping)
  const deleted = await inBatches(() => deleteExpiredOrders(db, { olderThanDays: config.retentionDays, batchSize }))
  const keys = await inBatches(() =>
    deleteExpiredIdempotencyKeys(db, { olderThanDays: config.idempotencyKeyDays, batchSize }),
  )
  const idleKeys = await inBatches(() => deleteIdleOrderingKeys(db, { batchSize }))
  const forgotten = await deleteStaleWorkers(db, {
    olderThanMs: FORGET_WORKER_AFTER_MS,
    keepThroughputMs: KEEP_THROUGHPUT_MS,
  })
  if (deleted > 0 || keys > 0 || idleKeys > 0 || forgotten > 0) {
    log.info(
      { deleted, idempotencyKeys: keys, idleOrderingKeys: idleKeys, forgottenWorkers: forgotten },
      'retention done',
    )
  }
}

/** Deletes batch after batch until a batch comes back short; 0 when another worker holds the lock. */
async function deleteInBatches(
  deleteBatch: () => Promise<number | undefined>,
  batchSize: number,
  stopping: AbortSignal,
): Promise<number> {
  let total = 0
  while (!stopping.aborted) {
    const deleted = await deleteBatch()
    if (deleted === undefined) break // another worker is on it
    total += deleted
    if (deleted < batchSize) break
    await sleep(PAUSE_BETWEEN_BATCHES_MS)
  }
  return total
}
