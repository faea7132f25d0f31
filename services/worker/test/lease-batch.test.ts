import { setTimeout as sleep } from 'node:timers/promises'
import { getOrder, insertOrders, leaseOrders, listOrders, promoteDueOrders, sql } from '@postgres-queue/db'
import { effectCounts, makeOrder, openEffectsDatabase, recordEffect } from '@postgres-queue/testkit'
import t from 'tap'
import { leaseMode } from '../src/modes/lease.js'
import type { OrderProcessor } from '../src/processor.js'
import { capturingLogger, runBatch, running, silentLogger, testConfig } from './helpers.js'

const leaseConfig = (overrides = {}) => testConfig({ mode: 'lease', ...overrides })

t.test('a lease batch completes its orders, holding each as processing while it runs', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const inserted = await insertOrders(db, [makeOrder(), makeOrder(), makeOrder()])
  const seen: unknown[] = []
  const processor: OrderProcessor = async (order, ctx) => {
    seen.push(await getOrder(db, order.id))
    return recordEffect(order.id, ctx.workerId)
  }
  const { log, lines } = capturingLogger()
  const { claimed } = await runBatch(leaseMode, {
    db,
    processor,
    config: leaseConfig({ workerId: 'w-l' }),
    log,
    ...running,
  })
  t.equal(claimed, 3)
  t.match(
    seen,
    inserted.map(() => ({ status: 'processing', lockedBy: 'w-l', attempts: 1 })),
  )
  for (const { id } of inserted) {
    t.match(await getOrder(db, id), { status: 'completed', attempts: 1, completedBy: 'w-l', lockedBy: null })
  }
  t.equal((await effectCounts(db)).size, 3)
  t.equal(lines.filter((l) => l.msg === 'order processed').length, 3)
})

t.test('orders of a lease batch run concurrently, up to the configured concurrency', async (t) => {
  const { db } = await openEffectsDatabase(t)
  await insertOrders(
    db,
    Array.from({ length: 8 }, () => makeOrder()),
  )
  let running_ = 0
  let peak = 0
  const processor: OrderProcessor = async () => {
    peak = Math.max(peak, ++running_)
    await sleep(50) // work that takes a moment, so that orders overlap
    running_--
  }
  await runBatch(leaseMode, { db, processor, config: leaseConfig({ concurrency: 4 }), log: silentLogger, ...running })
  t.equal(peak, 4)
  t.equal((await listOrders(db, { status: 'completed', limit: 10 })).length, 8)
})

t.test('a heartbeat keeps a slow order from being taken over', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const [order] = await insertOrders(db, [makeOrder()])
  const rivals: number[] = []
  const processor: OrderProcessor = async (o, ctx) => {
    // Three lease periods long; another worker keeps trying to claim meanwhile.
    for (let i = 0; i < 6; i++) {
      await sleep(100)
      await promoteDueOrders(db, { limit: 10 })
      const leased = await leaseOrders(db, { limit: 1, workerId: 'rival', leaseMs: 10_000 })
      rivals.push(...leased.map((l) => l.order.id))
    }
    return recordEffect(o.id, ctx.workerId)
  }
  await runBatch(leaseMode, { db, processor, config: leaseConfig({ leaseMs: 200 }), log: silentLogger, ...running })
  t.same(rivals, [], 'the rival never got the order')
  t.match(await getOrder(db, order!.id), { status: 'completed', attempts: 1 })
})

t.test('a failure is fenced, counted at claim, and retried later; its writes are undone', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const [good, bad] = await insertOrders(db, [makeOrder(), makeOrder({ customerId: 'bad' })])
  const processor: OrderProcessor = async (order, ctx) => async (tx) => {
    await recordEffect(order.id, ctx.workerId)(tx)
    if (order.customerId === 'bad') throw new Error('ledger refused')
  }
  await runBatch(leaseMode, {
    db,
    processor,
    config: leaseConfig({ retry: { baseMs: 60_000, maxMs: 60_000 } }),
    log: silentLogger,
    ...running,
  })
  t.match(await getOrder(db, good!.id), { status: 'completed' })
  const failed = await getOrder(db, bad!.id)
  t.match(failed, { status: 'scheduled', attempts: 1, lastError: 'Error: ledger refused', lockedBy: null })
  t.ok(failed!.runAt.getTime() > Date.now() + 20_000, 'it waits out its backoff')
  t.same(await effectCounts(db), new Map([[good!.id, 1]]))
})

t.test('a worker whose lease was taken over completes nothing and aborts its processor', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const [order] = await insertOrders(db, [makeOrder()])
  let aborted = false
  const processor: OrderProcessor = async (o, ctx) => {
    // Simulate a takeover: the lease lapsed, was rescued and leased again behind this worker's back.
    await db.execute(
      sql`update orders set locked_by = 'usurper', lease_token = lease_token + 1, attempts = attempts + 1 where id = ${o.id}`,
    )
    // Work longer than the 150 ms lease: only the heartbeat's abort can end it early.
    await sleep(1000, undefined, { signal: ctx.signal }).catch(() => (aborted = true))
    return recordEffect(o.id, ctx.workerId)
  }
  const { log, lines } = capturingLogger()
  await runBatch(leaseMode, { db, processor, config: leaseConfig({ leaseMs: 150 }), log, ...running })
  t.ok(aborted, 'the heartbeat noticed and aborted the processor')
  t.match(await getOrder(db, order!.id), { status: 'processing', lockedBy: 'usurper' })
  t.equal((await effectCounts(db)).size, 0, 'no effect was written')
  t.ok(lines.some((l) => l.msg === 'lease lost to another worker'))
})

t.test('a graceful stop releases the leases of unstarted orders at once', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const [first] = await insertOrders(
    db,
    Array.from({ length: 5 }, () => makeOrder()),
  )
  const stopClaiming = new AbortController()
  const processor: OrderProcessor = async (order, ctx) => {
    stopClaiming.abort()
    return recordEffect(order.id, ctx.workerId)
  }
  await runBatch(leaseMode, {
    db,
    processor,
    config: leaseConfig({ concurrency: 1 }),
    log: silentLogger,
    ...running,
    stopClaiming: stopClaiming.signal,
  })
  t.match(await getOrder(db, first!.id), { status: 'completed' })
  const pending = await listOrders(db, { status: 'pending', limit: 10 })
  t.equal(pending.length, 4)
  t.ok(
    pending.every((o) => o.attempts === 0 && o.lockedBy === null && o.runAt <= new Date()),
    'released: due now, unattempted, unheld',
  )
})

t.test(
  'every order a batch holds keeps its lease, waiting, running or done, however long the batch takes',
  async (t) => {
    const { db } = await openEffectsDatabase(t)
    const inserted = await insertOrders(
      db,
      Array.from({ length: 6 }, () => makeOrder()),
    )
    const rivals: number[] = []
    let stop = false
    let rival: Promise<void> | undefined
    // A rival worker rescuing and leasing whatever it can, from when the batch holds its orders on.
    const startRival = async () => {
      while (!stop) {
        await promoteDueOrders(db, { limit: 10 })
        rivals.push(
          ...(await leaseOrders(db, { limit: 10, workerId: 'rival', leaseMs: 10_000 })).map((l) => l.order.id),
        )
        await sleep(20) // the rival's poll interval
      }
    }
    // One at a time, 150 ms each: the last order waits 750 ms and the first waits as long to be
    // completed, both past the 300 ms lease, only a heartbeat of every held lease keeps them.
    const processor: OrderProcessor = async (order, ctx) => {
      rival ??= startRival()
      await sleep(150)
      return recordEffect(order.id, ctx.workerId)
    }
    await runBatch(leaseMode, {
      db,
      processor,
      config: leaseConfig({ leaseMs: 300, concurrency: 1 }),
      log: silentLogger,
      ...running,
    })
    stop = true
    await rival
    t.same(rivals, [], 'the rival never got one')
    for (const { id } of inserted) t.match(await getOrder(db, id), { status: 'completed', attempts: 1, leaseToken: 1 })
    t.equal((await effectCounts(db)).size, 6)
  },
)

t.test('an order whose CommitWork ends its own session fails alone; the others complete once', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const orders = await insertOrders(
    db,
    Array.from({ length: 4 }, (_, i) => makeOrder({ customerId: i === 1 ? 'killer' : `c-${i}`, maxAttempts: 1 })),
  )
  const processor: OrderProcessor = async (order, ctx) => {
    if (order.customerId !== 'killer') return recordEffect(order.id, ctx.workerId)
    return async (tx) => void (await tx.execute(sql`select pg_terminate_backend(pg_backend_pid())`))
  }
  const { log, lines } = capturingLogger()
  await runBatch(leaseMode, { db, processor, config: leaseConfig(), log, ...running })
  t.match(await getOrder(db, orders[1]!.id), {
    status: 'failed',
    lastError: /completing this order failed, even alone/,
  })
  for (const order of orders.filter((_, i) => i !== 1)) t.match(await getOrder(db, order.id), { status: 'completed' })
  t.same([...(await effectCounts(db)).values()], [1, 1, 1], 'one effect row per completed order')
  t.ok(lines.some((l) => l.msg === 'completing the order breaks its transaction'))
})

t.test('slow CommitWork is completed over several short transactions, within the budget and the leases', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const orders = await insertOrders(
    db,
    Array.from({ length: 8 }, () => makeOrder()),
  )
  const transactions: { txid: string; openMs: number }[] = []
  // Each CommitWork takes 300 ms (a lock wait, a slow write): 2.4 s in all, past the 1 s budget
  // and the 1.5 s lease.
  const processor: OrderProcessor = async (order, ctx) => async (tx) => {
    await tx.execute(sql`select pg_sleep(0.3)`)
    const [row] = await tx.execute<{ txid: string; open_ms: number }>(
      sql`select txid_current()::text as txid, extract(epoch from clock_timestamp() - transaction_timestamp()) * 1000 as open_ms`,
    )
    transactions.push({ txid: row!.txid, openMs: Number(row!.open_ms) })
    await recordEffect(order.id, ctx.workerId)(tx)
  }
  const rescued: number[] = []
  let watching = true
  const rescuer = (async () => {
    while (watching) {
      rescued.push(...(await promoteDueOrders(db, { limit: 10 })).rescued.map((r) => r.id))
      await sleep(50)
    }
  })()
  await runBatch(leaseMode, {
    db,
    processor,
    config: leaseConfig({ orderTimeoutMs: 500, batchTimeoutMs: 1000, leaseMs: 1500 }),
    log: silentLogger,
    ...running,
  })
  watching = false
  await rescuer
  for (const { id } of orders) t.match(await getOrder(db, id), { status: 'completed', attempts: 1 })
  t.same([...(await effectCounts(db)).values()], Array(8).fill(1), 'each CommitWork committed once')
  const distinct = new Set(transactions.map((tx) => tx.txid)).size
  t.ok(distinct >= 3, `${distinct} completing transactions, not one`)
  const longest = Math.max(...transactions.map((tx) => tx.openMs))
  t.ok(longest < 1000 + 500, `none open longer than the budget and one order: ${Math.round(longest)} ms`)
  t.same(rescued, [], 'no lease lapsed meanwhile')
})
