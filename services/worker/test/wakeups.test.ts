import { setTimeout as sleep } from 'node:timers/promises'
import { closeDb, createDb, type Db, getOrder, insertOrders, notifyOrdersWaiting, sql } from '@postgres-queue/db'
import { makeOrder, openEffectsDatabase, waitFor } from '@postgres-queue/testkit'
import t, { type Test } from 'tap'
import type { WorkerConfig } from '../src/config.js'
import { createWorker } from '../src/loop/worker.js'
import { type OrderProcessor, processOrder } from '../src/processor.js'
import { silentLogger, testConfig } from './helpers.js'

/** Milliseconds until order `id` is completed; fails the test if it is not within `timeoutMs`. */
async function msUntilCompleted(db: Parameters<typeof getOrder>[0], id: number, timeoutMs: number): Promise<number> {
  const started = Date.now()
  await waitFor(async () => (await getOrder(db, id))?.status === 'completed', {
    timeoutMs,
    message: `order ${id} to be completed`,
  })
  return Date.now() - started
}

/** Starts a worker on `db` with an hourly schedule: only its wake-ups and timers can explain a pickup. */
async function startHourlyWorker(
  t: Test,
  db: Db,
  { processor = processOrder, retry }: { processor?: OrderProcessor; retry?: WorkerConfig['retry'] } = {},
): Promise<void> {
  const worker = createWorker({
    db,
    processor,
    config: testConfig({ cron: '0 0 * * * *', ...(retry && { retry }) }),
    log: silentLogger,
  })
  t.teardown(() => worker.stop())
  await worker.start() // resolves once it listens
}

/**
 * Starts a worker on `workerDb` with an hourly schedule (only its own timers can explain a pickup)
 * whose processor fails each order's first attempt, retried 400-800 ms later; submits one order.
 */
async function submitToWorkerFailingOnce(t: Test, db: Db, workerDb: Db) {
  let attempts = 0
  await startHourlyWorker(t, workerDb, {
    processor: async () => {
      if (++attempts === 1) throw new Error('the first attempt fails')
    },
    retry: { baseMs: 800, maxMs: 800 },
  })
  const [order] = await insertOrders(db, [makeOrder()])
  await notifyOrdersWaiting(db)
  return { order: order!, attempts: () => attempts }
}

t.test('a notification wakes an idle worker at once, long before its next tick', async (t) => {
  const { db } = await openEffectsDatabase(t)
  // Hourly ticks: only the wake-up can explain a quick pickup.
  await startHourlyWorker(t, db)
  const [order] = await insertOrders(db, [makeOrder()])
  await notifyOrdersWaiting(db)
  const ms = await msUntilCompleted(db, order!.id, 10_000)
  t.ok(ms <= 2000, `picked up ${ms} ms after the notification, not at the hourly tick`)
})

t.test('a lost wake-up costs at most one cron interval: the tick picks the order up', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const worker = createWorker({
    db,
    processor: processOrder,
    config: testConfig({ cron: '* * * * * *', jitterMs: 0 }),
    log: silentLogger,
  })
  t.teardown(() => worker.stop())
  await worker.start()
  const [order] = await insertOrders(db, [makeOrder()]) // and no notification
  const ms = await msUntilCompleted(db, order!.id, 2500)
  t.ok(ms <= 1500, `picked up by the next one-second tick (${ms} ms)`)
})

t.test('an order due later is picked up when it comes due, not at the next tick', async (t) => {
  const { db } = await openEffectsDatabase(t)
  // Hourly ticks again: only the promoter's timer can explain a pickup on time.
  await startHourlyWorker(t, db)
  const dueAt = new Date(Date.now() + 1000)
  const [order] = await insertOrders(db, [makeOrder({ runAt: dueAt })])
  t.equal(order!.status, 'scheduled')
  await notifyOrdersWaiting(db, { dueAt }) // as the api does after storing a scheduled order
  const ms = await msUntilCompleted(db, order!.id, 10_000)
  t.comment(`completed ${ms} ms after it was stored`)
  const completedAt = (await getOrder(db, order!.id))!.completedAt!.getTime()
  t.ok(completedAt >= dueAt.getTime(), 'not before it was due')
  t.ok(completedAt - dueAt.getTime() < 5000, `${completedAt - dueAt.getTime()} ms after it was due`)
})

t.test('a retry is picked up when its backoff ends, not at the next tick', async (t) => {
  const { db } = await openEffectsDatabase(t)
  const { order, attempts } = await submitToWorkerFailingOnce(t, db, db)
  // Generous for a loaded machine (10 s timed out twice in full runs beside the compose test's image
  // builds); the hourly schedule could not explain a pickup either way.
  const ms = await msUntilCompleted(db, order.id, 30_000)
  t.ok(ms >= 400, `retried after its backoff of 400-800 ms, done ${ms} ms after it was stored`)
  t.equal(attempts(), 2)
})

t.test('a promotion that fails is tried again within a second, not left to the next tick', async (t) => {
  const { db, url } = await openEffectsDatabase(t)
  // The worker's statements give up after 200 ms: a lock held past the backoff's end fails the
  // promotion that its timer starts.
  const workerDb = createDb(url, { maxConnections: 4, statementTimeoutMs: 200 })
  t.teardown(() => closeDb(workerDb))
  const { order, attempts } = await submitToWorkerFailingOnce(t, db, workerDb)
  await waitFor(async () => (await getOrder(db, order.id))?.status === 'scheduled', {
    message: 'the first attempt to fail and schedule its retry',
  })
  const retryAt = (await getOrder(db, order.id))!.runAt.getTime()
  // Locked from before the retry is due until well after, then released.
  await db.transaction(async (tx) => {
    await tx.execute(sql`lock table orders in access exclusive mode`)
    await sleep(Math.max(0, retryAt - Date.now()) + 1000)
  })
  const ms = await msUntilCompleted(db, order.id, 10_000)
  t.ok(ms <= 3000, `picked up ${ms} ms after the lock was released, not at the hourly tick`)
  t.equal(attempts(), 2)
})

t.test('a due order a promotion passed over (another transaction held it) is promoted once free', async (t) => {
  const { db } = await openEffectsDatabase(t)
  await startHourlyWorker(t, db)
  const dueAt = new Date(Date.now() + 300)
  const [order] = await insertOrders(db, [makeOrder({ runAt: dueAt })])
  // Held from before it comes due until after: the promotion its timer starts skips it (SKIP
  // LOCKED), and by the time the worker asks what comes due next, it is already due.
  await db.transaction(async (tx) => {
    await tx.execute(sql`select id from orders where id = ${order!.id} for update`)
    await notifyOrdersWaiting(db, { dueAt })
    await sleep(dueAt.getTime() - Date.now() + 500)
  })
  const ms = await msUntilCompleted(db, order!.id, 10_000)
  t.ok(ms <= 2000, `picked up ${ms} ms after the lock was released, not at the hourly tick`)
})
