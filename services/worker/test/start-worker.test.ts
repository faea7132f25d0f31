import { getOrder, insertOrders, notifyOrdersWaiting, sql } from '@postgres-queue/db'
import { makeOrder, openEffectsDatabase, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { loadConfig, type Order, type OrderProcessor, startWorker } from '../src/index.js'

const PROCESSOR_SEES = [
  'id',
  'customerId',
  'currency',
  'items',
  'totalCents',
  'status',
  'priority',
  'runAt',
  'attempts',
  'maxAttempts',
  'lastError',
  'orderingKey',
  'createdAt',
  'updatedAt',
] as const satisfies readonly (keyof Order)[]

// The README's embedding example, as a team would run it inside its own process or test.

t.test('startWorker: consuming once it resolves, stopped by stop(), nothing process-wide touched', async (t) => {
  const { db, url } = await openEffectsDatabase(t)
  const listenersBefore = ['SIGTERM', 'SIGINT', 'uncaughtException'].map((e) => process.listenerCount(e))
  const processed: number[] = []
  const seen: Order[] = []
  const processor: OrderProcessor = async (order) => {
    processed.push(order.id)
    seen.push(order)
  }
  // The schedule ticks once a year: only a wake-up can bring the order in.
  const config = loadConfig({
    DATABASE_URL: url,
    WORKER_NAME: 'embedded',
    WORKER_CRON: '0 0 1 1 *',
    LOG_LEVEL: 'silent',
  })
  const worker = await startWorker({ processor, config })
  t.match(worker.id, /^embedded-\d+-[0-9a-f]+$/, 'an id of its own, from its name')

  const [order] = await insertOrders(db, [makeOrder()])
  await notifyOrdersWaiting(db)
  await waitFor(async () => (await getOrder(db, order!.id))?.status === 'completed', {
    message: `order ${order!.id} to be completed`,
  })
  t.match(await getOrder(db, order!.id), { status: 'completed', completedBy: worker.id }, 'picked up by its wake-up')
  t.same(processed, [order!.id])
  // The contract is the api's order (less its completion, which has not happened), not the row.
  t.same(
    Object.keys(seen[0]!).sort(),
    [...PROCESSOR_SEES].sort(),
    'the processor sees the order as the api shows it, and nothing of the lease',
  )
  // Transaction mode claims by row lock, without a write: the order is as stored, pending.
  t.match(seen[0], {
    id: order!.id,
    customerId: order!.customerId,
    items: order!.items,
    status: 'pending',
    attempts: 0,
  })
  t.match(await worker.metrics.metrics(), /postgres_queue_orders_processed_total\{[^}]*outcome="completed"[^}]*\} 1/)

  await worker.stop()
  t.equal(worker.stop(), worker.stop(), 'stop() twice is the same stop')
  // The LISTEN connection is ended without waiting for the server (postgres.js ends it with timeout
  // 0), and a backend leaves pg_stat_activity a moment after its client's Terminate: a deadline, not
  // a single look. A connection left open keeps the count above 0 and fails the wait.
  const sessions = () =>
    db.execute<{ n: number }>(
      sql`select count(*)::int as n from pg_stat_activity where application_name = ${`postgres-queue worker ${worker.id}`}`,
    )
  await waitFor(async () => (await sessions())[0]?.n === 0, {
    message: "the worker's sessions to end",
    timeoutMs: 5000,
  }).catch(() => {})
  const [left] = await sessions()
  t.equal(left?.n, 0, 'its connections are closed')
  t.same(
    ['SIGTERM', 'SIGINT', 'uncaughtException'].map((e) => process.listenerCount(e)),
    listenersBefore,
    'no signal or process handler added',
  )
})

t.test(
  'startWorker refuses a schema never migrated, with a line saying what to do; migrate: true migrates it',
  async (t) => {
    const { url } = await openEffectsDatabase(t)
    const config = loadConfig({ DATABASE_URL: url, DATABASE_SCHEMA: 'fresh_queue', LOG_LEVEL: 'silent' })
    await t.rejects(
      startWorker({ processor: async () => {}, config }),
      /no migrated schema fresh_queue: run the migration first/,
    )
    const worker = await startWorker({ processor: async () => {}, config, migrate: true })
    t.teardown(() => worker.stop())
    t.ok(worker.id, 'it migrated and started')
  },
)
