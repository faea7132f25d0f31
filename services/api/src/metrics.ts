import { type Db, getQueueStats, orderStatuses } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { withTimeout } from './timeout.js'

/**
 * Under Prometheus's default 10 s scrape timeout, so a database that does not answer costs the scrape
 * its queue gauges, never the whole scrape.
 */
const QUEUE_STATS_TIMEOUT_MS = 2000

type SubmissionEndpoint = 'single' | 'batch'

export interface ApiMetrics {
  /** Counts orders stored (replays of an Idempotency-Key are not new orders). */
  submitted(endpoint: SubmissionEndpoint, orders: number): void
  /** An onResponse hook timing every request by method, route pattern and status code. */
  timeRequest(request: FastifyRequest, reply: FastifyReply): Promise<void>
  /** Reads the queue's gauges from the database, then renders every metric in Prometheus's text format. */
  scrape(): Promise<string>
  contentType: string
}

/**
 * The api's Prometheus metrics, one registry per app (tests build many). Names share the
 * `postgres_queue_` prefix with the worker's (services/worker/src/metrics.ts), so one dashboard
 * query spans both.
 */
export function createApiMetrics({ db, log }: { db: Db; log: Logger }): ApiMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const submitted = new Counter({
    name: 'postgres_queue_orders_submitted_total',
    help: 'Orders stored by the api, by endpoint: single (POST /orders) or batch (POST /orders/batch)',
    labelNames: ['endpoint'],
    registers,
  })
  // Pre-created so dashboards see zeros, not gaps.
  for (const endpoint of ['single', 'batch']) submitted.inc({ endpoint }, 0)
  const depth = new Gauge({
    name: 'postgres_queue_depth',
    help: 'Orders by status at scrape time; completed is estimated from table statistics, the others are exact',
    labelNames: ['status'],
    registers,
  })
  const lag = new Gauge({
    name: 'postgres_queue_lag_seconds',
    help: 'Age of the oldest claimable pending order at scrape time; 0 when none waits',
    registers,
  })
  const statsUp = new Gauge({
    name: 'postgres_queue_stats_up',
    help: '1 when this scrape read the queue gauges from the database; 0 when it could not, and they are NaN',
    registers,
  })
  const duration = new Histogram({
    name: 'postgres_queue_http_request_duration_seconds',
    help: 'HTTP request duration, by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  })

  async function readQueueGauges(): Promise<void> {
    try {
      const stats = await withTimeout(getQueueStats(db), QUEUE_STATS_TIMEOUT_MS)
      for (const status of orderStatuses) depth.set({ status }, stats.counts[status])
      lag.set(stats.lagSeconds)
      statsUp.set(1)
    } catch (err) {
      // /ready and the request logs already report an outage at warn: a scrape every few seconds
      // would only repeat it. Stale values would lie, and 0 would say "empty, no lag": NaN is unknown.
      log.debug({ err }, 'queue gauges unavailable for this scrape')
      for (const status of orderStatuses) depth.set({ status }, Number.NaN)
      lag.set(Number.NaN)
      statsUp.set(0)
    }
  }

  return {
    submitted: (endpoint, orders) => submitted.inc({ endpoint }, orders),
    async timeRequest(request, reply) {
      // The route pattern (/orders/:id), never the URL: one series per route, not per order.
      const route = request.routeOptions.url ?? 'unmatched'
      duration.observe(
        { method: request.method, route, status_code: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      )
    },
    async scrape() {
      await readQueueGauges()
      return registry.metrics()
    },
    contentType: registry.contentType,
  }
}
