import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { type Db, getQueueStats, getThroughputHistory, listWorkers } from '@postgres-queue/db'
import { QueueStats, Throughput, ThroughputQuery } from '../schemas/queue.js'

/** The worker's default WORKER_HEARTBEAT_MS. */
const HEARTBEAT_MS = 5000
/** Three missed heartbeats: one late beat (a slow database, a GC pause) does not mark a worker gone. */
export const WORKER_GONE_AFTER_MS = 3 * HEARTBEAT_MS

/** The width of the workers' throughput buckets (order_throughput). */
const BUCKET_SECONDS = 5

export const queueRoutes: FastifyPluginAsyncTypebox<{ db: Db }> = async (app, { db }) => {
  const stats = { operationId: 'getQueueStats', tags: ['queue'], summary: 'Counts by status, lag, recent throughput and the worker fleet' }
  app.get('/queue/stats', { schema: { ...stats, response: { 200: QueueStats } } }, async () => {
    const [queue, workers] = await Promise.all([
      getQueueStats(db),
      listWorkers(db, { goneAfterMs: WORKER_GONE_AFTER_MS }),
    ])
    return {
      ...queue,
      workers: workers.map((w) => ({
        id: w.id,
        host: w.host,
        pid: w.pid,
        mode: w.mode,
        state: w.state,
        startedAt: w.startedAt.toISOString(),
        lastSeenAt: w.lastSeenAt.toISOString(),
        processed: w.processed,
        failed: w.failed,
      })),
    }
  })

  const throughput = { operationId: 'getQueueThroughput', tags: ['queue'], summary: 'Completions and failures per 5-second bucket, for a chart' }
  app.get(
    '/queue/throughput',
    { schema: { ...throughput, querystring: ThroughputQuery, response: { 200: Throughput } } },
    async (request) => {
      const points = await getThroughputHistory(db, { minutes: request.query.minutes })
      return {
        bucketSeconds: BUCKET_SECONDS,
        points: points.map((p) => ({ at: p.at.toISOString(), completed: p.completed, failed: p.failed })),
      }
    },
  )
}
