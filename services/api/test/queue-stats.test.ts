import { insertOrders, recordHeartbeat, registerWorker, sql } from '@postgres-queue/db'
import { makeOrder } from '@postgres-queue/testkit'
import t from 'tap'
import Value from 'typebox/value'
import { QueueStats, Throughput } from '../src/schemas/queue.js'
import { insertFailedOrders, startApi, UNREACHABLE_DATABASE_URL } from './helpers.js'

t.test('GET /queue/stats counts by status, measures lag and throughput, and lists the fleet', async (t) => {
  const { app, db } = await startApi(t)
  const [old] = await insertOrders(db, [makeOrder(), makeOrder(), makeOrder()])
  // Due half a minute ago: a runAt in the past is stored as now, so the wait is made in the table.
  await db.execute(sql`update orders set run_at = now() - interval '30 seconds' where id = ${old!.id}`)
  await insertOrders(db, [makeOrder({ runAt: new Date(Date.now() + 60_000) })]) // not due: no lag
  await insertFailedOrders(db, 2)
  await registerWorker(db, { id: 'w-1', host: 'box-a', pid: 11, mode: 'transaction', heartbeatMs: 5000 })
  await recordHeartbeat(db, {
    id: 'w-1',
    host: 'box-a',
    pid: 11,
    mode: 'transaction',
    heartbeatMs: 5000,
    processed: 9,
    failed: 2,
    completedSince: 9,
    failedSince: 2,
  })

  const response = await app.inject({ method: 'GET', url: '/queue/stats' })
  t.equal(response.statusCode, 200)
  const stats = response.json()
  t.ok(Value.Check(QueueStats, stats), 'the body is QueueStats')
  t.match(stats, {
    counts: { scheduled: 1, pending: 3, processing: 0, failed: 2, cancelled: 0 },
    completedLastMinute: 9,
    completedLast5Minutes: 9,
    failedLast5Minutes: 2,
  })
  t.ok(stats.lagSeconds >= 29 && stats.lagSeconds < 40, `lag from the oldest due order: ${stats.lagSeconds}`)
  t.match(stats.workers, [
    { id: 'w-1', host: 'box-a', pid: 11, mode: 'transaction', state: 'alive', processed: 9, failed: 2 },
  ])
  t.match(stats.workers[0], { startedAt: /^\d{4}-\d\d-\d\dT/, lastSeenAt: /^\d{4}-\d\d-\d\dT/ })
})

t.test('a worker is gone once it has missed three of its own heartbeats, stopped once it left', async (t) => {
  const { app, db } = await startApi(t)
  for (const id of ['late', 'silent', 'left'])
    await registerWorker(db, { id, host: 'h', pid: 1, mode: 'lease', heartbeatMs: 5000 })
  await registerWorker(db, { id: 'patient', host: 'h', pid: 1, mode: 'lease', heartbeatMs: 20_000 })
  await db.execute(sql`update workers set last_seen_at = now() - interval '16 seconds' where id = 'patient'`)
  await db.execute(sql`update workers set last_seen_at = now() - interval '10 seconds' where id = 'late'`)
  await db.execute(sql`update workers set last_seen_at = now() - interval '16 seconds' where id = 'silent'`)
  await db.execute(sql`update workers set stopped_at = now() where id = 'left'`)
  const { workers } = (await app.inject({ method: 'GET', url: '/queue/stats' })).json()
  const states = Object.fromEntries(workers.map((w: { id: string; state: string }) => [w.id, w.state]))
  t.same(states, { late: 'alive', silent: 'gone', left: 'stopped', patient: 'alive' })
})

t.test('GET /queue/throughput returns the 5-second buckets of the last 15 minutes by default', async (t) => {
  const { app, db } = await startApi(t)
  await db.execute(sql`insert into order_throughput (bucket, worker_id, completed, failed) values
    (date_bin(interval '5 seconds', now() - interval '1 minute', timestamptz '2000-01-01'), 'a', 4, 1),
    (date_bin(interval '5 seconds', now() - interval '1 minute', timestamptz '2000-01-01'), 'b', 6, 0),
    (date_bin(interval '5 seconds', now() - interval '20 minutes', timestamptz '2000-01-01'), 'a', 7, 0)`)

  const recent = await app.inject({ method: 'GET', url: '/queue/throughput' })
  t.equal(recent.statusCode, 200)
  t.ok(Value.Check(Throughput, recent.json()), 'the body is Throughput')
  t.match(recent.json(), { bucketSeconds: 5, points: [{ completed: 10, failed: 1 }] }, 'summed over the fleet')
  t.equal(recent.json().points.length, 1)

  const longer = (await app.inject({ method: 'GET', url: '/queue/throughput?minutes=30' })).json()
  t.same(
    longer.points.map((p: { completed: number }) => p.completed),
    [7, 10],
    'oldest first',
  )
})

for (const minutes of ['0', '1441', '1.5', 'all']) {
  t.test(`GET /queue/throughput answers 400 for minutes=${minutes}`, async (t) => {
    const { app } = await startApi(t)
    const response = await app.inject({ method: 'GET', url: `/queue/throughput?minutes=${minutes}` })
    t.equal(response.statusCode, 400)
    t.match(response.json(), { code: 'VALIDATION_FAILED' })
  })
}

t.test('answers 503 DATABASE_UNAVAILABLE when the database is down', async (t) => {
  const { app } = await startApi(t, { databaseUrl: UNREACHABLE_DATABASE_URL })
  for (const url of ['/queue/stats', '/queue/throughput']) {
    const response = await app.inject({ method: 'GET', url })
    t.equal(response.statusCode, 503, url)
    t.match(response.json(), { code: 'DATABASE_UNAVAILABLE' })
  }
})
