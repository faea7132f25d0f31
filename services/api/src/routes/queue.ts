import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
  type Db,
  getBlockedKeys,
  getQueueStats,
  getThroughputHistory,
  listWorkers,
  THROUGHPUT_BUCKET_SECONDS,
} from '@postgres-queue/db'
import { QueueStats, Throughput, ThroughputQuery } from '../schemas/queue.js'

/** The blocked keys /queue/stats lists, oldest first. */
const BLOCKED_KEYS_SHOWN = 10

export const queueRoutes: FastifyPluginAsyncTypebox<{ db: Db }> = async (app, { db }) => {
  const stats = {
    operationId: 'getQueueStats',
    tags: ['queue'],
    summary: 'Counts by status, lag, recent throughput and the worker fleet',
  }
  app.get('/queue/stats', { schema: { ...stats, response: { 200: QueueStats } } }, async () => {
    const [queue, blocked, workers] = await Promise.all([
      getQueueStats(db),
      getBlockedKeys(db, { limit: BLOCKED_KEYS_SHOWN }),
      listWorkers(db),
    ])
    return {
      ...queue,
      blockedKeys: {
        count: blocked.count,
        onFailed: blocked.onFailed,
        oldest: blocked.oldest.map((k) => ({
          key: k.key,
          head: k.head ?? null,
          waiting: k.waiting,
          waitingSince: k.waitingSince.toISOString(),
        })),
      },
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
