import { nowMs } from '../clock.js'
import type { BenchContext } from '../context.js'
import { stopAll, waitUntil } from '../processes.js'
import type { ProcessingResult } from '../results.js'
import { describeBatches, type WorkerMode } from '../settings.js'
import { perSecond } from '../stats.js'
import { loadDelayedBacklog, loadHistory } from './history.js'
import { createOurDatabase, dropOurDatabase, nonePending, preloadOrders, verifyOrders } from './orders.js'
import { startOurWorkers } from './services.js'

/** How often the bench looks for the end: one index probe, cheap next to the workers' load. */
const DRAINED_POLL_MS = 200

export interface OurProcessingOptions {
  workers: number
  mode: WorkerMode
  batchSize: number
  historyRows?: number
  delayedRows?: number
  logLevel?: 'warn' | 'info'
  /** Spread the orders over this many orderingKeys (none if absent). */
  keys?: number
  /** Orders preloaded, if not `sizes.processingOrders`. */
  jobs?: number
}

/**
 * One processing run of ours: a fresh database, `sizes.processingOrders` preloaded orders (after
 * `historyRows` completed ones), then the real worker processes until none is pending.
 * Throughput is first to last `completed_at`, read back with every order.
 */
export async function processOurs(ctx: BenchContext, options: OurProcessingOptions): Promise<ProcessingResult> {
  const jobs = options.jobs ?? ctx.sizes.processingOrders
  const keys = options.keys ?? 0
  const historyRows = options.historyRows ?? 0
  const delayedRows = options.delayedRows ?? 0
  const logLevel = options.logLevel ?? 'warn'
  const label =
    `${options.mode} mode, ${describeBatches(options.batchSize)}` +
    `${logLevel === 'warn' ? '' : `, LOG_LEVEL=${logLevel}`}${keys ? `, ${keys.toLocaleString('en')} orderingKey${keys === 1 ? '' : 's'}` : ''}`
  const { url, db } = await createOurDatabase(
    ctx,
    `ours_${options.workers}w_${options.batchSize}_${historyRows}h_${delayedRows}d_${logLevel}_${keys}k`,
  )
  try {
    if (historyRows > 0) await loadHistory(url, historyRows)
    // Before the preload: verifyOrders reads back the orders after the last id it was given.
    if (delayedRows > 0) await loadDelayedBacklog(url, delayedRows)
    const after = await preloadOrders(db, jobs, keys)
    await ctx.server.checkpoint()

    const workers = startOurWorkers(url, options.workers, options)
    const cpu = await ctx.startCpuMeter(() => workers.map((w) => w.pid))
    const started = nowMs()
    let wallMs: number
    let cpuUse: Awaited<ReturnType<typeof cpu>>
    try {
      await waitUntil('our workers to drain the queue', () => nonePending(db), {
        intervalMs: DRAINED_POLL_MS,
        children: workers,
      })
    } finally {
      wallMs = nowMs() - started
      cpuUse = await cpu()
      await stopAll(workers)
    }
    const verdict = await verifyOrders(db, { after, expected: jobs })
    const firstToLastMs =
      verdict.lastCompletedAt && verdict.firstCompletedAt
        ? verdict.lastCompletedAt.getTime() - verdict.firstCompletedAt.getTime()
        : Number.NaN
    return {
      system: 'ours',
      label,
      mode: options.mode,
      batchSize: options.batchSize,
      logLevel,
      workers: options.workers,
      jobs,
      historyRows,
      delayedRows,
      ...(keys ? { keys } : {}),
      firstToLastMs,
      rate: perSecond(jobs, firstToLastMs),
      timing: 'min to max completed_at (statement time of each batch completion)',
      wallMs,
      wallRate: perSecond(jobs, wallMs),
      perWorker: verdict.perWorker,
      exactlyOnce: verdict.exactlyOnce,
      cpu: cpuUse,
    }
  } finally {
    await dropOurDatabase(ctx, url, db)
  }
}
