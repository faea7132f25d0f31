import { makeOrder, openTestDb, settleNow } from '@postgres-queue/testkit'
import t, { type Test } from 'tap'
import {
  countOtherWorkersAlive,
  deleteExpiredIdempotencyKeys,
  deleteExpiredOrders,
  deleteStaleWorkers,
  findIdempotencyKeys,
  getOrder,
  getQueueStats,
  getThroughputHistory,
  insertOrders,
  insertSubmissions,
  leaseOrders,
  listWorkers,
  markWorkerStopped,
  queueDepthQuery,
  recordHeartbeat,
  registerWorker,
  sql,
} from '../src/index.js'

const box = (id: string, mode = 'transaction') => ({ id, host: 'box', pid: 1, mode, heartbeatMs: 5000 })

const setUp = (t: Test) => openTestDb(t, { maxConnections: 4 })

t.test('workers register, heartbeat, stop, and go silent', async (t) => {
  const db = await setUp(t)
  for (const id of ['alive', 'stops', 'dies']) await registerWorker(db, box(id))
  await recordHeartbeat(db, { ...box('alive'), processed: 7, failed: 1, completedSince: 7, failedSince: 1 })
  await markWorkerStopped(db, 'stops')
  await db.execute(sql`update workers set last_seen_at = now() - interval '1 minute' where id = 'dies'`)
  const fleet = await listWorkers(db)
  t.same(
    new Map(fleet.map((w) => [w.id, w.state])),
    new Map([
      ['alive', 'alive'],
      ['stops', 'stopped'],
      ['dies', 'gone'],
    ]),
  )
  t.match(
    fleet.find((w) => w.id === 'alive'),
    { processed: 7, failed: 1, host: 'box', mode: 'transaction' },
  )

  await registerWorker(db, { ...box('stops', 'lease'), pid: 2 })
  t.match(
    (await listWorkers(db)).find((w) => w.id === 'stops'),
    {
      state: 'alive',
      pid: 2,
      processed: 0,
    },
  )
  t.equal(
    await deleteStaleWorkers(db, { olderThanMs: 30_000, keepThroughputMs: 86_400_000 }),
    1,
    'the silent one is forgotten',
  )
})

t.test('countOtherWorkersAlive counts the live workers of a mode, but the one asking', async (t) => {
  const db = await setUp(t)
  const others = (id: string, mode = 'transaction') => countOtherWorkersAlive(db, { id, mode })
  await registerWorker(db, box('first'))
  t.equal(await others('first'), 0, 'alone: none, itself not counted')
  await registerWorker(db, box('second'))
  t.equal(await others('first'), 1, 'the second, seen from the first')
  t.equal(await others('second'), 1, 'and the first, from the second')
  await registerWorker(db, box('leasing', 'lease'))
  t.equal(await others('first'), 1, 'a worker of the other mode does not count')
  t.equal(await others('leasing', 'lease'), 0, 'nor, from lease mode, the transaction-mode ones')
  await registerWorker(db, box('stops'))
  await markWorkerStopped(db, 'stops')
  await registerWorker(db, box('silent'))
  await db.execute(sql`update workers set last_seen_at = now() - interval '16 seconds' where id = 'silent'`)
  t.equal(await others('first'), 1, 'nor one stopped, nor one silent for 3 of its 5 s heartbeats')
  await db.execute(sql`update workers set last_seen_at = now() - interval '14 seconds' where id = 'silent'`)
  t.equal(await others('first'), 2, 'one late by less than that still counts')
})

t.test('stats count the queue exactly, estimate history, and measure lag and throughput', async (t) => {
  const db = await setUp(t)
  const [old] = await insertOrders(db, [makeOrder({ runAt: new Date(Date.now() - 30_000) })])
  await insertOrders(db, [makeOrder(), makeOrder(), makeOrder({ runAt: new Date(Date.now() + 60_000) })])
  await leaseOrders(db, { limit: 1, workerId: 'w', leaseMs: 60_000 }) // takes `old`, the oldest due
  await db.execute(sql`insert into orders (customer_id, currency, items, total_cents, status)
    select 'c', 'EUR', '[{"sku":"s","quantity":1,"unitPriceCents":1}]', 1, 'completed' from generate_series(1, 500)`)
  await db.execute(sql`analyze orders`)
  await registerWorker(db, box('w', 'lease'))
  await recordHeartbeat(db, { ...box('w', 'lease'), processed: 12, failed: 2, completedSince: 12, failedSince: 2 })
  await recordHeartbeat(db, { ...box('w', 'lease'), processed: 15, failed: 2, completedSince: 3, failedSince: 0 })

  const stats = await getQueueStats(db)
  t.match(stats.counts, { scheduled: 1, pending: 2, processing: 1, failed: 0, cancelled: 0 })
  // The queue depth statement on its own (what KEDA's scaler runs): the due orders, nothing else.
  const [depth] = await db.execute<{ count: string }>(sql.raw(queueDepthQuery(db.$queueSchema)))
  t.equal(Number(depth?.count), stats.counts.pending, 'queueDepthQuery counts the pending orders')
  t.ok(Math.abs(stats.counts.completed - 500) <= 5, `completed estimated near 500: ${stats.counts.completed}`)
  t.ok(stats.lagSeconds >= 0 && stats.lagSeconds < 5, `lag from the oldest due pending order: ${stats.lagSeconds}`)
  t.equal(old!.status, 'pending')
  t.match(stats, { completedLastMinute: 15, completedLast5Minutes: 15, failedLast5Minutes: 2 })
  const history = await getThroughputHistory(db, { minutes: 5 })
  t.same(
    history.reduce((sum, p) => sum + p.completed, 0),
    15,
  )
})

t.test(
  'retention deletes old finished orders in batches, keeps the rest, and runs in one worker at a time',
  async (t) => {
    const db = await setUp(t)
    const orders = await insertOrders(
      db,
      Array.from({ length: 6 }, () => makeOrder()),
    )
    const [a, b, c, d, e, f] = orders.map((o) => o.id) as number[]
    await settleNow(db, { completed: [a!, b!, c!], workerId: 'w' })
    await db.execute(sql`update orders set status = 'cancelled' where id = ${d}`)
    await db.execute(sql`update orders set status = 'failed' where id = ${e}`)
    await db.execute(sql`update orders set updated_at = now() - interval '8 days' where id <> ${c}`)

    // Another worker holds the retention lock: this one skips rather than waits.
    let release: () => void = () => {}
    let locked: () => void = () => {}
    const hasLock = new Promise<void>((resolve) => (locked = resolve))
    const holder = db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(hashtext('postgres-queue:postgres_queue'), 2)`)
      locked()
      await new Promise<void>((resolve) => (release = resolve))
    })
    await hasLock
    t.equal(await deleteExpiredOrders(db, { olderThanDays: 7, batchSize: 2 }), undefined)
    release()
    await holder

    t.equal(await deleteExpiredOrders(db, { olderThanDays: 7, batchSize: 2 }), 2)
    t.equal(await deleteExpiredOrders(db, { olderThanDays: 7, batchSize: 2 }), 1)
    t.equal(await deleteExpiredOrders(db, { olderThanDays: 7, batchSize: 2 }), 0)
    const kept = await Promise.all([a, b, c, d, e, f].map(async (id) => (await getOrder(db, id!))?.status ?? 'deleted'))
    t.same(
      kept,
      ['deleted', 'deleted', 'completed', 'deleted', 'failed', 'pending'],
      'recent, failed and pending orders stay',
    )
  },
)

t.test(
  'an Idempotency-Key outlives its order: retention deletes the order, the key still stores nothing',
  async (t) => {
    const db = await setUp(t)
    const submission = { orders: [makeOrder()], idempotency: { key: 'k', requestHash: 'h' } }
    const [first] = await insertSubmissions(db, [submission], { returnRows: false })
    if (!first?.stored) throw new Error('not stored')
    await db.execute(sql`update orders set status = 'completed', updated_at = now() - interval '8 days'`)
    t.equal(await deleteExpiredOrders(db, { olderThanDays: 7, batchSize: 10 }), 1)
    t.equal(await getOrder(db, first.ids[0]!), undefined, 'the order is gone')
    t.same(await insertSubmissions(db, [submission], { returnRows: false }), [{ stored: false, key: 'k' }])
    t.same((await findIdempotencyKeys(db, ['k'])).get('k')?.orderIds, first.ids)

    await db.execute(sql`update idempotency_keys set created_at = now() - interval '31 days'`)
    t.equal(await deleteExpiredIdempotencyKeys(db, { olderThanDays: 30, batchSize: 10 }), 1, 'past its own window')
    t.match(
      await insertSubmissions(db, [submission], { returnRows: false }),
      [{ stored: true }],
      'then the key is free',
    )
  },
)

t.test('an Idempotency-Key lives as long as any of its orders, whatever its window', async (t) => {
  const db = await setUp(t)
  const keyed = (key: string, order = makeOrder()) => ({ orders: [order], idempotency: { key, requestHash: 'h' } })
  const farAhead = new Date(Date.now() + 365 * 24 * 3600 * 1000)
  const submissions = [
    keyed('scheduled', makeOrder({ runAt: farAhead })),
    keyed('failed'),
    keyed('gone'),
    ...Array.from({ length: 3 }, (_, i) => keyed(`younger-${i}`)),
  ]
  const stored = await insertSubmissions(db, submissions, { returnRows: false })
  const ids = stored.map((s) => (s.stored ? s.ids[0] : undefined))
  await db.execute(sql`update orders set status = 'failed' where id = ${ids[1]}`)
  await db.execute(sql`delete from orders where id <> all(${sql.param(ids.slice(0, 2))}::bigint[])`)
  // All past the window; the oldest first are the ones whose orders still wait.
  await db.execute(sql`update idempotency_keys set created_at = now() - interval '40 days'
    where key in ('scheduled', 'failed')`)
  await db.execute(
    sql`update idempotency_keys set created_at = now() - interval '35 days' where key <> 'scheduled' and key <> 'failed'`,
  )

  t.equal(
    await deleteExpiredIdempotencyKeys(db, { olderThanDays: 30, batchSize: 2 }),
    2,
    'a full batch, of keys whose orders are gone',
  )
  t.equal(await deleteExpiredIdempotencyKeys(db, { olderThanDays: 30, batchSize: 2 }), 2)
  t.same(
    [
      ...(
        await findIdempotencyKeys(
          db,
          submissions.map((s) => s.idempotency.key),
        )
      ).keys(),
    ].sort(),
    ['failed', 'scheduled'],
  )
  t.same(
    await insertSubmissions(db, [submissions[0]!, submissions[1]!], { returnRows: false }),
    [
      { stored: false, key: 'scheduled' },
      { stored: false, key: 'failed' },
    ],
    'a late retry of a waiting order stores nothing again',
  )
})

t.test('the completed count: exact on a table never analyzed, then an estimate that follows its growth', async (t) => {
  const db = await setUp(t)
  const completed = (n: number) =>
    db.execute(sql`insert into orders (customer_id, currency, items, total_cents, status)
      select 'c', 'EUR', '[{"sku":"s","quantity":1,"unitPriceCents":1}]', 1, 'completed' from generate_series(1, ${n}::int)`)
  await completed(30)
  t.equal((await getQueueStats(db)).counts.completed, 30, 'counted, not read as 0, before any analyze')
  await completed(470)
  await db.execute(sql`analyze orders`)
  await completed(1500) // no analyze since: the estimate scales the last one to the table's size now
  const estimate = (await getQueueStats(db)).counts.completed
  t.ok(
    Math.abs(estimate - 2000) <= 200,
    `within 10% of 2,000 without waiting for autovacuum (the last analyze saw 500): ${estimate}`,
  )
})

t.test("gone is judged by each worker's own heartbeat interval: three missed beats", async (t) => {
  const db = await setUp(t)
  await registerWorker(db, { ...box('slow'), heartbeatMs: 20_000 }) // WORKER_HEARTBEAT_MS=20000
  await registerWorker(db, box('fast'))
  // 30 s silent: one missed beat and a half for the slow one, six for the fast one.
  await db.execute(sql`update workers set last_seen_at = now() - interval '30 seconds'`)
  t.same(
    new Map((await listWorkers(db)).map((w) => [w.id, w.state])),
    new Map([
      ['slow', 'alive'],
      ['fast', 'gone'],
    ]),
  )
  await db.execute(sql`update workers set last_seen_at = now() - interval '61 seconds' where id = 'slow'`)
  t.same(
    new Map((await listWorkers(db)).map((w) => [w.id, w.state])),
    new Map([
      ['slow', 'gone'],
      ['fast', 'gone'],
    ]),
    'past 60 s, the slow one too',
  )
  await recordHeartbeat(db, {
    ...box('slow'),
    heartbeatMs: 20_000,
    processed: 0,
    failed: 0,
    completedSince: 0,
    failedSince: 0,
  })
  t.match(
    (await listWorkers(db)).find((w) => w.id === 'slow'),
    { state: 'alive', heartbeatMs: 20_000 },
    'a heartbeat brings it back',
  )
})

t.test('a heartbeat registers again a worker whose row was forgotten', async (t) => {
  const db = await setUp(t)
  await registerWorker(db, box('long-paused'))
  await db.execute(sql`delete from workers`)
  await recordHeartbeat(db, { ...box('long-paused'), processed: 3, failed: 0, completedSince: 0, failedSince: 0 })
  t.match(await listWorkers(db), [{ id: 'long-paused', state: 'alive', processed: 3 }])
})
