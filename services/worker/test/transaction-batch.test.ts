import { setTimeout as sleep } from 'node:timers/promises'
import { getOrder, insertOrders, listOrders } from '@postgres-queue/db'
import { effectCounts, makeOrder, recordEffect } from '@postgres-queue/devkit'
import t from 'tap'
import type { OrderProcessor } from '../src/processor.js'
import { processOrder } from '../src/processor.js'
import { runTransactionBatch } from '../src/transaction-batch.js'
import { capturingLogger, running, setUpDatabase, silentLogger, testConfig } from './helpers.js'


t.test('a batch completes every claimed order in one transaction and logs one line per order', async (t) => {
  const { db } = await setUpDatabase(t)
  const inserted = await insertOrders(db, [makeOrder(), makeOrder(), makeOrder()])
  const { log, lines } = capturingLogger()
  const claimed = await runTransactionBatch({
    db,
    processor: processOrder,
    config: testConfig({ workerId: 'w-1' }),
    log,
    ...running,
  })
  t.equal(claimed, 3)
  for (const { id } of inserted) {
    t.match(await getOrder(db, id), { status: 'completed', attempts: 1, completedBy: 'w-1', completedAt: Date })
  }
  const processed = lines.filter((l) => l.msg === 'order processed')
  t.same(
    processed.map((l) => l.orderId),
    inserted.map((o) => o.id),
  )
  t.match(processed[0], { workerId: 'w-1', attempt: 1, waitMs: Number, processMs: Number })
})

t.test('a throwing processor fails only its own order, and only its writes are undone', async (t) => {
  const { db } = await setUpDatabase(t)
  const [first, poison, last] = await insertOrders(db, [makeOrder(), makeOrder({ customerId: 'poison' }), makeOrder()])
  const processor: OrderProcessor = async (order, ctx) => {
    if (order.customerId === 'poison') throw new Error('payment declined')
    return recordEffect(order.id, ctx.workerId)
  }
  await runTransactionBatch({ db, processor, config: testConfig(), log: silentLogger, ...running })

  t.match(await getOrder(db, first!.id), { status: 'completed', attempts: 1 })
  t.match(await getOrder(db, last!.id), { status: 'completed', attempts: 1 })
  t.match(await getOrder(db, poison!.id), {
    status: 'pending',
    attempts: 1,
    lastError: 'Error: payment declined',
    completedAt: null,
  })
  t.same(
    await effectCounts(db),
    new Map([
      [first!.id, 1],
      [last!.id, 1],
    ]),
  )
})

t.test('commit work that throws is rolled back to its savepoint and fails only its order', async (t) => {
  const { db } = await setUpDatabase(t)
  const [good, bad] = await insertOrders(db, [makeOrder(), makeOrder({ customerId: 'bad-write' })])
  const processor: OrderProcessor = async (order, ctx) => async (tx) => {
    await recordEffect(order.id, ctx.workerId)(tx)
    if (order.customerId === 'bad-write') throw new Error('constraint says no')
  }
  await runTransactionBatch({ db, processor, config: testConfig(), log: silentLogger, ...running })

  t.match(await getOrder(db, good!.id), { status: 'completed' })
  t.match(await getOrder(db, bad!.id), { status: 'pending', attempts: 1, lastError: 'Error: constraint says no' })
  t.same(await effectCounts(db), new Map([[good!.id, 1]]), "the failed order's insert is undone")
})

t.test('an order that outlives its timeout fails with a timeout error; the rest complete', async (t) => {
  const { db } = await setUpDatabase(t)
  const [slow, quick] = await insertOrders(db, [makeOrder({ customerId: 'slow' }), makeOrder()])
  const processor: OrderProcessor = async (order, ctx) => {
    if (order.customerId === 'slow') await sleep(10_000, undefined, { signal: ctx.signal })
  }
  const started = Date.now()
  await runTransactionBatch({
    db,
    processor,
    config: testConfig({ orderTimeoutMs: 100 }),
    log: silentLogger,
    ...running,
  })
  t.ok(Date.now() - started < 5000, 'the batch did not wait for the slow processor')
  t.match(await getOrder(db, slow!.id), { status: 'pending', attempts: 1, lastError: /timed out after 100 ms/ })
  t.match(await getOrder(db, quick!.id), { status: 'completed' })
})

t.test('orders that would not fit in the batch budget are left untouched for the next claim', async (t) => {
  const { db } = await setUpDatabase(t)
  await insertOrders(db, [makeOrder(), makeOrder(), makeOrder(), makeOrder()])
  const processor: OrderProcessor = () => sleep(60)
  // Each order may take 100 ms and the budget is 250 ms: the second order starts at ~60 ms, the
  // third at ~120 ms would need until ~220 ms (fits), the fourth at ~180 ms would not.
  const claimed = await runTransactionBatch({
    db,
    processor,
    config: testConfig({ orderTimeoutMs: 100, batchTimeoutMs: 250 }),
    log: silentLogger,
    ...running,
  })
  t.equal(claimed, 4)
  const pending = await listOrders(db, { status: 'pending', limit: 10 })
  t.ok(pending.length >= 1, 'at least one order was left')
  t.ok(
    pending.every((o) => o.attempts === 0 && o.lastError === null),
    'left orders carry no attempt',
  )
  const completed = await listOrders(db, { status: 'completed', limit: 10 })
  t.equal(completed.length + pending.length, 4)
})

t.test('a forced stop rolls the batch back: its orders are pending and unattempted', async (t) => {
  const { db } = await setUpDatabase(t)
  const inserted = await insertOrders(db, [makeOrder(), makeOrder()])
  const stop = new AbortController()
  const processor: OrderProcessor = async (order, ctx) => {
    stop.abort(new Error('worker stopped'))
    return recordEffect(order.id, ctx.workerId)
  }
  await t.rejects(
    runTransactionBatch({ db, processor, config: testConfig(), log: silentLogger, ...running, stop: stop.signal }),
  )
  for (const { id } of inserted) t.match(await getOrder(db, id), { status: 'pending', attempts: 0 })
  t.equal((await effectCounts(db)).size, 0)
})
