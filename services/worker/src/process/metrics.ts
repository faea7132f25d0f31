import { createServer, type Server } from 'node:http'
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client'
import type { WorkerObserver } from '../observer.js'

export interface WorkerMetrics {
  registry: Registry
  observer: WorkerObserver
}

/**
 * The worker's Prometheus metrics, fed by the same observer as the fleet heartbeat. Labelled by the
 * worker's name (WORKER_NAME: a replica, a pod), not its per-process id, so a restart continues
 * the same series instead of starting new ones.
 */
export function createWorkerMetrics(labels: { worker: string; mode: string }): WorkerMetrics {
  const registry = new Registry()
  registry.setDefaultLabels({ worker: labels.worker, mode: labels.mode })
  collectDefaultMetrics({ register: registry })
  const processed = new Counter({
    name: 'postgres_queue_orders_processed_total',
    help: 'Orders whose attempt ended, by outcome: completed, retried (failed, will retry) or dead_lettered',
    labelNames: ['outcome'],
    registers: [registry],
  })
  const duration = new Histogram({
    name: 'postgres_queue_processing_duration_seconds',
    help: 'Time in the processor per order attempt',
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
    registers: [registry],
  })
  const pickup = new Histogram({
    name: 'postgres_queue_pickup_latency_seconds',
    help: 'From when an order became claimable to when its processing started',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 60],
    registers: [registry],
  })
  const batchSize = new Histogram({
    name: 'postgres_queue_claim_batch_size',
    help: 'Orders per claim',
    buckets: [0, 1, 5, 10, 25, 50, 100, 250, 500, 1000],
    registers: [registry],
  })
  const leasesLost = new Counter({
    name: 'postgres_queue_leases_lost_total',
    help: 'Leases this worker found taken over while processing (lease mode)',
    registers: [registry],
  })
  // Pre-create the outcome series so dashboards see zeros, not gaps.
  for (const outcome of ['completed', 'retried', 'dead_lettered']) processed.inc({ outcome }, 0)
  return {
    registry,
    observer: {
      claimed: (count) => batchSize.observe(count),
      settled({ outcome, waitMs, processMs }) {
        processed.inc({ outcome })
        if (processMs !== undefined) duration.observe(processMs / 1000)
        if (waitMs !== undefined) pickup.observe(waitMs / 1000)
      },
      leaseLost: () => leasesLost.inc(),
    },
  }
}

/** Serves GET /metrics on `port` for Prometheus to scrape. */
export function serveMetrics(registry: Registry, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url !== '/metrics') {
      response.writeHead(404).end()
      return
    }
    registry
      .metrics()
      .then((body) => response.writeHead(200, { 'content-type': registry.contentType }).end(body))
      .catch(() => response.writeHead(500).end())
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, () => resolve(server))
  })
}
