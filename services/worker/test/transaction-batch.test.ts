import { setTimeout as sleep } from 'node:timers/promises'
import { closeDb, createDb, getOrder, insertOrders, listOrders, sql } from '@postgres-queue/db'
import { effectCounts, makeOrder, openEffectsDatabase, recordEffect, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import type { ModeDeps } from '../src/modes/mode.js'
import { MAX_ERROR_LENGTH } from '../src/modes/thrown.js'
import { transactionMode } from '../src/modes/transaction.js'
import type { OrderProcessor } from '../src/processor.js'
import { processOrder } from '../src/processor.js'
import { capturingLogger, runBatch, running, silentLogger, testConfig } from './helpers.js'

t.test('a batch completes every claimed order in one transaction and logs one line per order', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const inserted = await insertOrders(db, [makeOrder(), makeOrder(), makeOrder()])
  const { log, lines, raw } = capturingLogger({ service: 'worker', workerId: 'w-1' })
  const { claimed } = await runBatch(transactionMode, {
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
  const line = raw.find((l) => l.includes('order processed')) ?? ''
  t.equal(line.split('"workerId"').length - 1, 1, 'each field once (Elasticsearch refuses duplicates)')
})

t.test('a throwing processor fails only its own order, and only its writes are undone', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const [first, poison, last] = await insertOrders(db, [makeOrder(), makeOrder({ customerId: 'poison' }), makeOrder()])
  const processor: OrderProcessor = async (order, ctx) => {
    if (order.customerId === 'poison') throw new Error('payment declined')
    return recordEffect(order.id, ctx.workerId)
  }
  await runBatch(transactionMode, { db, processor, config: testConfig(), log: silentLogger, ...running })

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
  const { db } = await openEffectsDatabase(t)
  const [good, bad] = await insertOrders(db, [makeOrder(), makeOrder({ customerId: 'bad-write' })])
  const processor: OrderProcessor = async (order, ctx) => async (tx) => {
    await recordEffect(order.id, ctx.workerId)(tx)
    if (order.customerId === 'bad-write') throw new Error('constraint says no')
  }
  await runBatch(transactionMode, { db, processor, config: testConfig(), log: silentLogger, ...running })

  t.match(await getOrder(db, good!.id), { status: 'completed' })
  t.match(await getOrder(db, bad!.id), { status: 'pending', attempts: 1, lastError: 'Error: constraint says no' })
  t.same(await effectCounts(db), new Map([[good!.id, 1]]), "the failed order's insert is undone")
})

t.test('an order that outlives its timeout fails with a timeout error; the rest complete', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const [slow, quick] = await insertOrders(db, [makeOrder({ customerId: 'slow' }), makeOrder()])
  const processor: OrderProcessor = async (order, ctx) => {
    if (order.customerId === 'slow') await sleep(10_000, undefined, { signal: ctx.signal })
  }
  const started = Date.now()
  await runBatch(transactionMode, {
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
  const { db } = await openEffectsDatabase(t)
  await insertOrders(db, [makeOrder(), makeOrder(), makeOrder(), makeOrder()])
  const processor: OrderProcessor = async () => void (await sleep(50))
  // Each order may take 100 ms and the budget is 240 ms: the second order starts at ~50 ms, the
  // third at ~100 ms would need until ~200 ms (fits, with 40 ms to spare for a slow machine), the
  // fourth, at 150 ms at the earliest, never does.
  const { claimed } = await runBatch(transactionMode, {
    db,
    processor,
    config: testConfig({ orderTimeoutMs: 100, batchTimeoutMs: 240 }),
    log: silentLogger,
    ...running,
  })
  t.equal(claimed, 4)
  const pending = await listOrders(db, { status: 'pending', limit: 10 })
  t.equal(pending.length, 1, 'the fourth order was left')
  t.ok(
    pending.every((o) => o.attempts === 0 && o.lastError === null),
    'left orders carry no attempt',
  )
  const completed = await listOrders(db, { status: 'completed', limit: 10 })
  t.equal(completed.length + pending.length, 4)
})

t.test('a forced stop rolls the batch back: its orders are pending and unattempted', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const inserted = await insertOrders(db, [makeOrder(), makeOrder()])
  const stop = new AbortController()
  const processor: OrderProcessor = async (order, ctx) => {
    stop.abort(new Error('worker stopped'))
    return recordEffect(order.id, ctx.workerId)
  }
  await t.rejects(
    runBatch(transactionMode, {
      db,
      processor,
      config: testConfig(),
      log: silentLogger,
      ...running,
      abandonWork: stop.signal,
    }),
  )
  for (const { id } of inserted) t.match(await getOrder(db, id), { status: 'pending', attempts: 0 })
  t.equal((await effectCounts(db)).size, 0)
})

t.test('whatever a processor throws fails only its order, with a storable error; the rest complete', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const hostile: Record<string, () => unknown> = {
    nul: () => new Error('binary body \u0000\u0000 from upstream'),
    nullPrototype: () => Object.create(null),
    string: () => 'a plain string',
    null: () => null,
    huge: () => new Error('x'.repeat(1_000_000)),
    loneSurrogate: () => new Error('half an emoji \ud83d'),
    throwingGetter: () => {
      const err = new Error('unreadable')
      Object.defineProperty(err, 'message', {
        get() {
          throw new Error('no message for you')
        },
      })
      return err
    },
    frozen: () => Object.freeze(new TypeError('frozen')),
  }
  const kinds = Object.keys(hostile)
  const orders = await insertOrders(
    db,
    [...kinds, 'good'].map((customerId) => makeOrder({ customerId })),
  )
  const processor: OrderProcessor = async (order, ctx) => {
    const make = hostile[order.customerId]
    if (make) throw make()
    return recordEffect(order.id, ctx.workerId)
  }
  const { log, lines } = capturingLogger()
  await runBatch(transactionMode, { db, processor, config: testConfig(), log, ...running })
  for (const order of orders) {
    const stored = await getOrder(db, order.id)
    if (order.customerId === 'good') {
      t.match(stored, { status: 'completed' }, 'the good order completed beside them')
      continue
    }
    t.match(stored, { status: 'pending', attempts: 1 }, `${order.customerId}: retried, its attempt counted`)
    t.notOk((stored!.lastError ?? '').includes('\u0000'), `${order.customerId}: no NUL stored`)
    t.ok(Array.from(stored!.lastError ?? '').length <= MAX_ERROR_LENGTH, `${order.customerId}: bounded`)
  }
  t.match((await getOrder(db, orders[0]!.id))?.lastError, 'Error: binary body  from upstream')
  const failures = lines.filter((l) => l.msg === 'order failed; will retry')
  t.equal(failures.length, kinds.length, 'one log line per failed order')
  t.match(failures[0], { err: { type: 'Error', stack: /binary body/ } }, 'logged with its stack')
})

t.test(
  'commit work past its time is cancelled in the database; its order fails, counted; the rest commit',
  async (t) => {
    const { db } = await openEffectsDatabase(t)
    const [stuck, good] = await insertOrders(db, [makeOrder({ customerId: 'hot-row' }), makeOrder()])
    let lateWrite: unknown
    let lateWriteSettled = false
    const processor: OrderProcessor = async (order, ctx) => async (tx) => {
      await recordEffect(order.id, ctx.workerId)(tx)
      if (order.customerId !== 'hot-row') return
      // A lock wait on a hot stock row: the statement outlives the order's time.
      await tx.execute(sql`select pg_sleep(20)`).catch(() => {})
      // It shrugs the cancel off and writes again, with its transaction long over.
      await recordEffect(
        order.id,
        'after-timeout',
      )(tx)
        .catch((err: unknown) => (lateWrite = err))
        .finally(() => (lateWriteSettled = true))
    }
    const started = performance.now()
    await runBatch(transactionMode, {
      db,
      processor,
      config: testConfig({ orderTimeoutMs: 300 }),
      log: silentLogger,
      ...running,
    })
    t.ok(performance.now() - started < 5000, 'the batch did not wait for the statement')
    t.match(await getOrder(db, stuck!.id), { status: 'pending', attempts: 1, lastError: /CommitWorkTimeoutError/ })
    t.match(await getOrder(db, good!.id), { status: 'completed' })
    // The batch has moved on; the stuck work gets its cancel, then tries its late write.
    await waitFor(() => lateWriteSettled, { message: "the stuck work's late write to be answered" })
    t.type((lateWrite as Error | undefined)?.cause, Error, 'the late write was refused')
    t.same(await effectCounts(db), new Map([[good!.id, 1]]), 'no effect of the stuck order, now or later')
  },
)

t.test('an order that breaks its batch is isolated and its attempt counted; the others complete', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const orders = await insertOrders(
    db,
    Array.from({ length: 9 }, (_, i) => makeOrder({ customerId: i === 5 ? 'poison' : `c-${i}` })),
  )
  const poison = orders[5]!
  // A rule of the team's, in the database: this order may not complete. It fails the completion
  // statement, so the whole batch's transaction, on every try.
  await db.execute(
    sql.raw(`
    create function refuse_poison() returns trigger language plpgsql as $$
    begin
      if new.status = 'completed' and new.customer_id = 'poison' then raise exception 'order % may not complete', new.id; end if;
      return new;
    end $$;
    create trigger refuse_poison before update on orders for each row execute function refuse_poison()`),
  )
  const processed: number[] = []
  const processor: OrderProcessor = async (order, ctx) => {
    processed.push(order.id)
    return recordEffect(order.id, ctx.workerId)
  }
  const { log, lines } = capturingLogger()
  await runBatch(transactionMode, { db, processor, config: testConfig(), log, ...running })
  t.match(await getOrder(db, poison.id), {
    status: 'pending',
    attempts: 1,
    lastError: /PoisonOrderError.*may not complete/,
  })
  for (const order of orders.filter((o) => o.id !== poison.id)) {
    t.match(await getOrder(db, order.id), { status: 'completed', attempts: 1 }, `order ${order.id} completed`)
  }
  t.same((await effectCounts(db)).get(poison.id), undefined, 'the poison order left no effect')
  // Each level of the split runs the failing half again: about 3n runs in all, once.
  t.ok(processed.length <= 3 * orders.length, `${processed.length} processor runs for ${orders.length} orders`)
  t.ok(lines.some((l) => l.msg === 'order breaks its batch; will retry'))
})

/** Runs drains as the worker would (each a fresh claim), until nothing is pending or `tries` is spent. */
async function drainRepeatedly(deps: ModeDeps, tries: number): Promise<unknown[]> {
  const failures: unknown[] = []
  for (let i = 0; i < tries; i++) {
    const result = await runBatch(transactionMode, deps).catch((err: unknown) => {
      failures.push(err)
      return { claimed: -1 }
    })
    if (result.claimed === 0) break
  }
  return failures
}

t.test(
  'an order whose CommitWork ends its own session is isolated and dead-lettered; the others complete once',
  async (t) => {
    const { db } = await openEffectsDatabase(t)
    const orders = await insertOrders(
      db,
      Array.from({ length: 5 }, (_, i) => makeOrder({ customerId: i === 2 ? 'killer' : `c-${i}`, maxAttempts: 2 })),
    )
    const killer = orders[2]!
    const calls = new Map<number, number>()
    const processor: OrderProcessor = async (order, ctx) => {
      calls.set(order.id, (calls.get(order.id) ?? 0) + 1)
      if (order.customerId !== 'killer') return recordEffect(order.id, ctx.workerId)
      return async (tx) => {
        await tx.execute(sql`select pg_terminate_backend(pg_backend_pid())`)
      }
    }
    await drainRepeatedly({ db, processor, config: testConfig(), log: silentLogger, ...running }, 20)
    t.match(await getOrder(db, killer.id), { status: 'failed', attempts: 2, lastError: /PoisonOrderError/ })
    for (const order of orders.filter((o) => o !== killer)) {
      t.match(await getOrder(db, order.id), { status: 'completed', attempts: 1 }, `order ${order.id} completed`)
    }
    t.same(
      [...(await effectCounts(db)).values()],
      [1, 1, 1, 1],
      'one effect row per completed order, none for the killer',
    )
    const neighbourRuns = orders.filter((o) => o !== killer).map((o) => calls.get(o.id) ?? 0)
    // Per attempt of the killer: the batch, then the killer alone (the order in hand when its
    // session ended), then the rest; neighbours after the killer were not reached in the first run.
    t.ok(Math.max(...neighbourRuns) <= 2, `each neighbour processed at most twice: ${neighbourRuns}`)
  },
)

t.test('an order that blocks the event loop past the session timeout is isolated; the others complete', async (t) => {
  const { db, url } = await openEffectsDatabase(t)
  // The worker's own sessions are bounded so (start.ts); the test's, not.
  const sessionBound = createDb(url, { idleInTransactionTimeoutMs: 500, statementTimeoutMs: 500 })
  t.teardown(() => closeDb(sessionBound))
  const orders = await insertOrders(
    db,
    Array.from({ length: 3 }, (_, i) => makeOrder({ customerId: i === 1 ? 'blocker' : `c-${i}`, maxAttempts: 1 })),
  )
  let blocks = 0
  const processor: OrderProcessor = async (order, ctx) => {
    if (order.customerId === 'blocker') {
      blocks += 1
      const until = performance.now() + 800
      while (performance.now() < until) {} // a synchronous loop: nothing else runs, not even its timeout
    }
    return recordEffect(order.id, ctx.workerId)
  }
  const failures = await drainRepeatedly(
    { db: sessionBound, processor, config: testConfig({ orderTimeoutMs: 300 }), log: silentLogger, ...running },
    10,
  )
  t.match(await getOrder(db, orders[1]!.id), { status: 'failed', attempts: 1 }, 'the blocker, dead-lettered')
  for (const order of [orders[0]!, orders[2]!]) t.match(await getOrder(db, order.id), { status: 'completed' })
  t.same(failures, [], 'no drain failed: the batch was split, not retried as an outage')
  t.equal(blocks, 2, 'the blocker ran twice: in its batch, then alone as the order in hand')
})

t.test('a batch that processes for longer than the session may sit idle keeps its session, and commits', async (t) => {
  const { db, url } = await openEffectsDatabase(t)
  // The worker's own sessions are bounded so (start.ts); the test's, not.
  const sessionBound = createDb(url, { idleInTransactionTimeoutMs: 1000, statementTimeoutMs: 1000 })
  t.teardown(() => closeDb(sessionBound))
  const orders = await insertOrders(
    db,
    Array.from({ length: 8 }, () => makeOrder()),
  )
  let runs = 0
  const processor: OrderProcessor = async () => {
    runs += 1
    await sleep(300) // well within its own timeout; eight of them, 2.4 s without a statement
    return undefined
  }
  const result = await runBatch(transactionMode, {
    db: sessionBound,
    processor,
    config: testConfig({ orderTimeoutMs: 500, batchTimeoutMs: 10_000 }),
    log: silentLogger,
    ...running,
  })
  t.equal(result.claimed, 8)
  t.equal(runs, 8, 'each order processed once')
  for (const order of orders) t.match(await getOrder(db, order.id), { status: 'completed' })
})
