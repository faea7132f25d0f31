import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
  type Db,
  getQueueStats,
  getThroughputHistory,
  listWorkers,
  THROUGHPUT_BUCKET_SECONDS,
} from '@postgres-queue/db'
import { QueueStats, Throughput, ThroughputQuery } from '../schemas/queue.js'

export const queueRoutes: FastifyPluginAsyncTypebox<{ db: Db }> = async (app, { db }) => {
  const stats = {
    operationId: 'getQueueStats',
    tags: ['queue'],
    summary: 'Counts by status, lag, recent throughput and the worker fleet',
  }
  app.get('/queue/stats', { schema: { ...stats, response: { 200: QueueStats } } }, async () => {
    const [queue, workers] = await Promise.all([getQueueStats(db), listWorkers(db)])
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

  const throughput = {
    operationId: 'getQueueThroughput',
    tags: ['queue'],
    summary: 'Completions and failures per 5-second bucket, for a chart',
  }
  app.get(
    '/queue/throughput',
    { schema: { ...throughput, querystring: ThroughputQuery, response: { 200: Throughput } } },
    async (request) => {
      const points = await getThroughputHistory(db, { minutes: request.query.minutes })
      return {
        bucketSeconds: THROUGHPUT_BUCKET_SECONDS,
        points: points.map((p) => ({ at: p.at.toISOString(), completed: p.completed, failed: p.failed })),
      }
    },
  )
}
