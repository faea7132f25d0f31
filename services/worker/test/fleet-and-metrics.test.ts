import { getOrder, getQueueStats, insertOrders, listWorkers, sql } from '@postgres-queue/db'
import { freePort } from '@postgres-queue/devkit'
import { checkDocumentedMetrics, makeOrder, openEffectsDatabase, servedMetrics, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { createWorker } from '../src/loop/worker.js'
import { observeAll } from '../src/observer.js'
import { joinFleet } from '../src/process/fleet.js'
import { scheduleMaintenance } from '../src/process/maintenance.js'
import { createWorkerMetrics, serveMetrics } from '../src/process/metrics.js'
import type { OrderProcessor } from '../src/processor.js'
import { silentLogger, testConfig } from './helpers.js'

t.test('a worker registers, reports what it processed with its heartbeat, and leaves as stopped', async (t) => {
  const { db } = await openEffectsDatabase(t)
  await insertOrders(db, [makeOrder(), makeOrder(), makeOrder({ customerId: 'bad', maxAttempts: 1 })])
  const config = testConfig({ workerId: 'fleet-1', heartbeatMs: 100 })
  const fleet = await joinFleet({ db, config, log: silentLogger })
  t.match(await listWorkers(db), [{ id: 'fleet-1', state: 'alive', processed: 0 }])
  const processor: OrderProcessor = async (order) => {
    if (order.customerId === 'bad') throw new Error('no')
  }
  await createWorker({ db, processor, config, log: silentLogger, observer: fleet.observer }).drain()
  // The next heartbeats carry the counts.
  await waitFor(async () => (await listWorkers(db))[0]?.processed === 2, {
    message: 'a heartbeat to report 2 orders processed',
  })
  t.match(await listWorkers(db), [{ id: 'fleet-1', processed: 2, failed: 1 }])
  t.match(await getQueueStats(db), { completedLastMinute: 2, failedLast5Minutes: 1 })
  await fleet.leave()
  t.match(await listWorkers(db), [{ id: 'fleet-1', state: 'stopped' }])
})

t.test('a worker knows the other workers of its mode alive: at once when joining, within a second later', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const first = await joinFleet({ db, config: testConfig({ workerId: 'first' }), log: silentLogger })
  t.teardown(() => first.leave())
  t.equal(first.othersAlive(), 0, 'alone')
  const second = await joinFleet({ db, config: testConfig({ workerId: 'second' }), log: silentLogger })
  t.equal(second.othersAlive(), 1, 'one that joins later knows of the first from the start')
  const leasing = await joinFleet({ db, config: testConfig({ workerId: 'leasing', mode: 'lease' }), log: silentLogger })
  t.teardown(() => leasing.leave())
  t.equal(leasing.othersAlive(), 0, 'a lease-mode worker counts only its own mode')
  await waitFor(async () => first.othersAlive() === 1, { timeoutMs: 3000, message: 'the first to count the second' })
  await second.leave()
  await waitFor(async () => first.othersAlive() === 0, { timeoutMs: 3000, message: 'the first to see the second gone' })
})

t.test('retention deletes finished orders past RETENTION_DAYS in batches', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const orders = await insertOrders(
    db,
    Array.from({ length: 5 }, () => makeOrder()),
  )
  await db.execute(sql`update orders set status = 'completed', updated_at = now() - interval '10 days'`)
  const recent = orders[0]!.id
  await db.execute(sql`update orders set updated_at = now() where id = ${recent}`)
  const maintenance = scheduleMaintenance({
    db,
    config: testConfig({ retentionDays: 7, retentionBatchSize: 2, retentionCron: '0 0 0 1 1 *' }),
    log: silentLogger,
  })
  t.teardown(() => maintenance.stop())
  await maintenance.run()
  t.match(await getQueueStats(db), { counts: { pending: 0 } })
  const left = await Promise.all(orders.map((o) => getOrder(db, o.id)))
  t.same(
    left.filter((o) => o !== undefined).map((o) => o!.id),
    [recent],
  )
})

t.test('metrics count outcomes and time processing and pickup, served for Prometheus', async (t) => {
  const { db } = await openEffectsDatabase(t)
  await insertOrders(db, [makeOrder(), makeOrder({ customerId: 'bad' })])
  const metrics = createWorkerMetrics({ worker: 'm-1', mode: 'transaction' })
  const processor: OrderProcessor = async (order) => {
    if (order.customerId === 'bad') throw new Error('no')
  }
  await createWorker({
    db,
    processor,
    config: testConfig(),
    log: silentLogger,
    observer: observeAll(metrics.observer),
  }).drain()
  const port = await freePort()
  const server = await serveMetrics(metrics.registry, port)
  t.teardown(() => server.close())
  const response = await fetch(`http://127.0.0.1:${port}/metrics`)
  t.equal(response.status, 200)
  const text = await response.text()
  t.match(text, /postgres_queue_orders_processed_total\{outcome="completed",worker="m-1",mode="transaction"\} 1/)
  t.match(text, /postgres_queue_orders_processed_total\{outcome="retried",worker="m-1",mode="transaction"\} 1/)
  t.match(text, /postgres_queue_processing_duration_seconds_count\{worker="m-1",mode="transaction"\} 2/)
  t.match(text, /postgres_queue_pickup_latency_seconds_count\{worker="m-1",mode="transaction"\} 2/)
  t.match(text, /postgres_queue_claim_batch_size_sum\{worker="m-1",mode="transaction"\} 2/)
  t.match(text, /process_cpu_seconds_total/)
  t.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404)
})

t.test(
  'the metrics docs/operations.md lists for a worker are exactly those served, with their types and labels',
  async (t) => {
    const metrics = createWorkerMetrics({ worker: 'worker-1', mode: 'transaction' })
    metrics.observer.claimed(1)
    metrics.observer.settled({ orderId: 1, attempt: 1, outcome: 'completed', waitMs: 1, processMs: 1 })
    metrics.observer.leaseLost(1)
    const exposition = await metrics.registry.metrics()
    t.match(
      exposition,
      /postgres_queue_orders_processed_total\{outcome="completed",worker="worker-1",mode="transaction"\} 1/,
    )
    // worker and mode are on every series, and documented once, above the table.
    const served = servedMetrics(exposition, ['worker', 'mode'])
    await checkDocumentedMetrics(t, 'Each worker', served)
  },
)
