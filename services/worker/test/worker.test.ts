import { setTimeout as sleep } from 'node:timers/promises'
import { claimBatch, closeDb, createDb, getOrder, insertOrders, listOrders } from '@postgres-queue/db'
import { effectCounts, makeOrder, openEffectsDatabase, recordEffect, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { drainInLanes } from '../src/loop/drainer.js'
import { createWorker } from '../src/loop/worker.js'
import type { BatchResult } from '../src/modes/mode.js'
import { transactionMode } from '../src/modes/transaction.js'
import { type OrderProcessor, processOrder } from '../src/processor.js'
import { capturingLogger, drainerDeps, running, silentLogger, testConfig } from './helpers.js'

const recordingProcessor: OrderProcessor = async (order, ctx) => recordEffect(order.id, ctx.workerId)

t.test('drain loops over batches until nothing is claimable', async (t) => {
  const { db } = await openEffectsDatabase(t)
  await insertOrders(
    db,
    Array.from({ length: 120 }, () => makeOrder()),
  )
  const worker = createWorker({
    db,
    processor: recordingProcessor,
    config: testConfig({ batchSize: 25 }),
    log: silentLogger,
  })
  await worker.drain()
  t.equal((await listOrders(db, { status: 'pending', limit: 500 })).length, 0)
  const counts = await effectCounts(db)
  t.equal(counts.size, 120)
  t.ok(
    [...counts.values()].every((n) => n === 1),
    'each order processed once',
  )
})

for (const mode of ['transaction', 'lease'] as const) {
  t.test(`${mode} mode: three workers draining at once process every order exactly once, and all work`, async (t) => {
    const { db, url } = await openEffectsDatabase(t)
    await insertOrders(
      db,
      Array.from({ length: 1000 }, () => makeOrder()),
    )
    const workers = ['w-1', 'w-2', 'w-3'].map((workerId) => {
      const pool = createDb(url, { maxConnections: 2 })
      t.teardown(() => closeDb(pool))
      return createWorker({
        db: pool,
        processor: async (order, ctx) => {
          await sleep(1) // let the other workers interleave
          return recordEffect(order.id, ctx.workerId)
        },
        config: testConfig({ workerId, mode, batchSize: 20, batchesInFlight: 2 }),
        log: silentLogger,
      })
    })
    await Promise.all(workers.map((w) => w.drain()))
    const counts = await effectCounts(db)
    t.equal(counts.size, 1000, 'every order was processed')
    t.same([...new Set(counts.values())], [1], 'no order was processed twice')
    const completed = await listOrders(db, { status: 'completed', limit: 500 })
    const more = await listOrders(db, { status: 'completed', limit: 500, after: completed.at(-1)!.id })
    const byWorker = new Set([...completed, ...more].map((o) => o.completedBy))
    t.same([...byWorker].sort(), ['w-1', 'w-2', 'w-3'])
  })
}

t.test('a second batch goes in flight only while claims come back full', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const claims: number[] = []
  let inHand = 0
  let mostInHand = 0
  const worker = createWorker({
    db,
    processor: async (order, ctx) => {
      mostInHand = Math.max(mostInHand, ++inHand)
      await sleep(5) // work that takes a moment, so that a second batch can be in hand meanwhile
      inHand -= 1
      return recordEffect(order.id, ctx.workerId)
    },
    config: testConfig({ batchSize: 5, batchesInFlight: 2 }),
    log: silentLogger,
    observer: { claimed: (count) => claims.push(count), settled() {}, leaseLost() {} },
  })
  await insertOrders(db, [makeOrder()])
  await worker.drain()
  t.same(claims, [1], 'one order, one claim: no second lane for a batch that was not full')

  claims.length = 0
  await insertOrders(
    db,
    Array.from({ length: 40 }, () => makeOrder()),
  )
  await worker.drain()
  t.equal(mostInHand, 2, 'with a backlog, two batches were processed at once')
  t.equal((await effectCounts(db)).size, 41)
  t.equal(
    claims.reduce((a, b) => a + b, 0),
    40,
    'and every order was claimed once',
  )
})

t.test('a tick skipped while a drain runs is logged at debug, not as a warning', async (t) => {
  const { db } = await openEffectsDatabase(t)
  await insertOrders(db, [makeOrder()])
  const { log, lines } = capturingLogger()
  let release = () => {}
  const held = new Promise<void>((resolve) => (release = resolve))
  const worker = createWorker({
    db,
    processor: () => held,
    config: testConfig({ cron: '* * * * * *' }),
    log,
  })
  worker.start()
  const fromCron = () => lines.filter((line) => line.source === 'node-cron')
  // A second tick while the first drain is held: node-cron skips it, and says so.
  await waitFor(() => fromCron().some((line) => /overlap/.test(String(line.msg))), {
    message: 'node-cron to log a skipped tick',
  })
  release()
  await worker.stop()
  t.ok(
    fromCron().some((line) => /overlap/.test(String(line.msg))),
    'node-cron skipped a tick',
  )
  t.notOk(
    fromCron().some((line) => Number(line.level) >= 40),
    'and said so below warn',
  )
})

t.test('a drain requested mid-drain makes the running drain look again', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const [first] = await insertOrders(db, [makeOrder()])
  let late: Promise<unknown> | undefined
  const worker = createWorker({
    db,
    processor: async (order, ctx) => {
      // An order arrives (and a wake-up with it) while the first batch is in hand.
      if (order.id === first!.id) late = insertOrders(db, [makeOrder()]).then(() => worker.drain())
      return recordEffect(order.id, ctx.workerId)
    },
    config: testConfig(),
    log: silentLogger,
  })
  await worker.drain()
  await late
  t.equal((await effectCounts(db)).size, 2, 'the late order was drained without waiting for a tick')
})

t.test('stop settles the order in hand and starts no other: they stay pending, unattempted', async (t) => {
  const { db } = await openEffectsDatabase(t)
  await insertOrders(
    db,
    Array.from({ length: 10 }, () => makeOrder()),
  )
  let stopRequested: ((stopped: Promise<void>) => void) | undefined
  const stopping = new Promise<void>((resolve) => (stopRequested = resolve))
  const worker = createWorker({
    db,
    processor: async (order, ctx) => {
      // The first order in hand asks the worker to stop, once.
      stopRequested?.(worker.stop())
      stopRequested = undefined
      await sleep(20) // the order is still in hand while the stop begins
      return recordEffect(order.id, ctx.workerId)
    },
    config: testConfig({ batchSize: 5 }),
    log: silentLogger,
  })
  await worker.start()
  await stopping // resolves once the stop that the order in hand requested has finished
  t.equal((await effectCounts(db)).size, 1, 'the order in hand completed')
  const pending = await listOrders(db, { status: 'pending', limit: 10 })
  t.equal(pending.length, 9, 'no other order was started')
  t.ok(pending.every((o) => o.attempts === 0))
})

t.test(
  'a full batch claims the next with its commit; a lane that stops gives that batch back unattempted',
  async (t) => {
    const { db } = await openEffectsDatabase(t)
    await insertOrders(
      db,
      Array.from({ length: 10 }, () => makeOrder()),
    )
    const deps = { db, processor: processOrder, config: testConfig({ batchSize: 5 }), log: silentLogger, ...running }
    const results: BatchResult[] = []
    const stopClaiming = new AbortController()
    await drainInLanes(
      drainerDeps(transactionMode(deps), {
        config: { batchSize: 5, maxBatchSize: 5 },
        stopClaiming: stopClaiming.signal,
      }),
      (result) => {
        results.push(result)
        stopClaiming.abort()
      },
    )
    t.equal(results.length, 1, 'the lane stopped after one batch')
    t.equal(results[0]?.claimedAhead?.orders.length, 5, 'which had claimed the next five with its commit')
    const pending = await listOrders(db, { status: 'pending', limit: 10 })
    t.equal(pending.length, 5, 'those five are pending')
    t.ok(
      pending.every((o) => o.attempts === 0),
      'unattempted',
    )
    const { tx, orders } = await claimBatch(db, { limit: 10 })
    await tx.rollback()
    t.equal(orders.length, 5, 'and no longer locked: a claim takes them at once')
  },
)

t.test('claims that come back full double, up to the maximum; each order is completed once', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const inserted = await insertOrders(
    db,
    Array.from({ length: 60 }, () => makeOrder()),
  )
  const config = testConfig({ batchSize: 5, maxBatchSize: 20 })
  const deps = { db, processor: processOrder, config, log: silentLogger, ...running }
  const claims: number[] = []
  await drainInLanes(drainerDeps(transactionMode(deps), { config: { batchSize: 5, maxBatchSize: 20 } }), (result) =>
    claims.push(result.claimed),
  )
  // Each full claim takes the next with its commit, twice as large up to 20; the last 5 come back
  // short, and the lane ends.
  t.same(claims, [5, 10, 20, 20, 5])
  const completed = await listOrders(db, { status: 'completed', limit: 100 })
  t.same(
    completed.map((o) => o.id).sort((a, b) => a - b),
    inserted.map((o) => o.id),
    'every order completed',
  )
  t.ok(
    completed.every((o) => o.attempts === 1),
    'each once',
  )
})

t.test('stop rolls back a batch that outlives the shutdown timeout', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const [order] = await insertOrders(db, [makeOrder()])
  let entered: () => void = () => {}
  const processing = new Promise<void>((resolve) => (entered = resolve))
  const worker = createWorker({
    db,
    processor: async (_order, ctx) => {
      entered()
      await sleep(60_000, undefined, { signal: ctx.signal })
    },
    config: testConfig({ shutdownTimeoutMs: 100, orderTimeoutMs: 60_000, batchTimeoutMs: 60_000 }),
    log: silentLogger,
  })
  await worker.start()
  await processing
  const started = Date.now()
  await worker.stop()
  t.ok(Date.now() - started < 3000, 'stop is bounded')
  t.match(await getOrder(db, order!.id), { status: 'pending', attempts: 0, lastError: null })
})

t.test('an unreachable database is logged once and retried, never thrown', async (t) => {
  const db = createDb('postgres://postgres:postgres@127.0.0.1:1/none', { connectTimeoutSeconds: 1 })
  t.teardown(() => closeDb(db))
  const { log, lines } = capturingLogger()
  const worker = createWorker({ db, processor: recordingProcessor, config: testConfig(), log })
  await worker.drain()
  await worker.drain()
  const warnings = lines.filter((l) => l.msg === 'database unavailable; retrying on the next tick')
  t.equal(warnings.length, 1)
})
