import { setTimeout as sleep } from 'node:timers/promises'
import { type Db, getOrder, insertOrders, leaseOrders, notifyOrdersWaiting, sql } from '@postgres-queue/db'
import { makeOrder, openEffectsDatabase, skewClock, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { DatabaseClock } from '../src/loop/clock.js'
import { Promoter } from '../src/loop/promoter.js'
import { createWorker } from '../src/loop/worker.js'
import { ignoreProgress } from '../src/observer.js'
import type { OrderProcessor } from '../src/processor.js'
import { silentLogger, testConfig } from './helpers.js'

// Due times are the database's: a worker host whose clock is a minute off starts a delayed order
// on time, and waits for a lease to lapse without asking the database over and over meanwhile.

async function commits(db: Db): Promise<number> {
  const [row] = await db.execute<{ n: string }>(
    sql`select xact_commit as n from pg_stat_database where datname = current_database()`,
  )
  return Number(row?.n)
}

t.test('a worker a minute ahead waits for a lease to lapse with one timer, not a run every 100 ms', async (t) => {
  const { db } = await openEffectsDatabase(t)
  await insertOrders(db, [makeOrder()])
  await leaseOrders(db, { limit: 1, workerId: 'elsewhere', leaseMs: 30_000 }) // lapses in 30 s
  skewClock(t, 60_000)
  const promoter = new Promoter({
    db,
    clock: new DatabaseClock(),
    log: silentLogger,
    observer: ignoreProgress,
    onPromoted: () => {},
  })
  t.teardown(() => promoter.stop())
  await promoter.run()
  // Statistics reach pg_stat_database within a second of a transaction; a settled count first.
  await sleep(1500)
  const before = await commits(db)
  await sleep(4000)
  const made = (await commits(db)) - before
  // Measured before the fix: 81, two statements every 100 ms. Late statistics of the set-up and the
  // measurement's own reads account for a few.
  t.ok(made <= 15, `${made} transactions in 4 s, not ~80`)
})

for (const skewMs of [60_000, -60_000]) {
  t.test(`a worker whose clock is ${skewMs / 1000} s off starts a delayed order when it comes due`, async (t) => {
    const { db } = await openEffectsDatabase(t)
    skewClock(t, skewMs)
    const started: number[] = []
    const processor: OrderProcessor = async () => void started.push(performance.now())
    // An hourly schedule: only the promoter's timer can explain a pickup on time.
    const worker = createWorker({ db, processor, config: testConfig({ cron: '0 0 * * * *' }), log: silentLogger })
    t.teardown(() => worker.stop())
    await worker.start()
    const submitted = performance.now()
    const [order] = await insertOrders(db, [makeOrder({ delaySeconds: 2 })])
    // As the api announces it: the due time, on the database's clock.
    await notifyOrdersWaiting(db, { dueAt: order!.runAt })
    await waitFor(async () => (await getOrder(db, order!.id))?.status === 'completed', {
      timeoutMs: 15_000,
      message: 'the delayed order to be processed',
    })
    const after = (started[0] ?? 0) - submitted
    t.ok(after >= 1900 && after < 4000, `started ${Math.round(after)} ms after its 2 s delay was set`)
  })
}
