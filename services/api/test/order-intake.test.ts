import {
  closeDb,
  countOrdersByStatus,
  createDb,
  type Db,
  isDatabaseUnavailable,
  listenForOrders,
  notifyOrdersWaiting,
  sql,
} from '@postgres-queue/db'
import { createLogger } from '@postgres-queue/runtime'
import { makeOrder, openTestDb, waitFor } from '@postgres-queue/testkit'
import t, { type Test } from 'tap'
import { createOrderIntake } from '../src/order-intake.js'
import { startApi, UNREACHABLE_DATABASE_URL } from './helpers.js'

const log = createLogger({ level: 'silent', format: 'json' })
const options = { maxBatch: 100, maxInFlight: 1, maxQueued: 10_000, maxWaitMs: 5000, log }

const setUp = (t: Test) => openTestDb(t, { maxConnections: 4 })

/** Rows inserted by one transaction share its xmin: the count is the number of insert commits. */
async function insertTransactions(db: Db): Promise<number> {
  const [row] = await db.execute<{ n: number }>(sql`select count(distinct xmin::text)::int as n from orders`)
  return row!.n
}

t.test('concurrent submissions share inserts, and each gets its own order back', async (t) => {
  const db = await setUp(t)
  const intake = createOrderIntake(db, options)
  const submitted = Array.from({ length: 50 }, (_, i) => makeOrder({ customerId: `c-${i}` }))
  const stored = await Promise.all(submitted.map((order) => intake.submit(order)))
  t.same(
    stored.map((r) => (r.stored ? r.orders[0]?.customerId : undefined)),
    submitted.map((o) => o.customerId),
    'every one stored, and answered with its own order',
  )
  const commits = await insertTransactions(db)
  t.ok(commits <= 3, `50 submissions in ${commits} insert transactions`)
})

t.test('API_INSERTS_IN_FLIGHT sets how many POST /orders inserts run at once', async (t) => {
  for (const [inFlight, check] of [
    ['1', (commits: number) => commits <= 3],
    ['4', (commits: number) => commits >= 4],
  ] as const) {
    const { app, db } = await startApi(t, { env: { API_INSERTS_IN_FLIGHT: inFlight }, maxConnections: 6 })
    const responses = await Promise.all(
      Array.from({ length: 30 }, () => app.inject({ method: 'POST', url: '/orders', payload: makeOrder() })),
    )
    t.ok(
      responses.every((r) => r.statusCode === 201),
      'every submission stored',
    )
    const commits = await insertTransactions(db)
    t.ok(check(commits), `${inFlight} in flight: 30 submissions in ${commits} insert transactions`)
  }
})

t.test('maxBatch bounds one insert', async (t) => {
  const db = await setUp(t)
  const intake = createOrderIntake(db, { ...options, maxBatch: 10 })
  await Promise.all(Array.from({ length: 41 }, () => intake.submit(makeOrder())))
  t.ok((await insertTransactions(db)) >= 5, 'at least ceil(41 / 10) inserts')
  t.equal((await countOrdersByStatus(db)).pending, 41)
})

t.test('an order the database refuses fails alone, not the group it was coalesced with', async (t) => {
  const db = await setUp(t)
  const intake = createOrderIntake(db, options)
  // The api's schema would refuse a lower-case currency; here it reaches the table's CHECK constraint.
  const results = await Promise.allSettled([
    intake.submit(makeOrder()),
    intake.submit(makeOrder()),
    intake.submit(makeOrder({ currency: 'eur' })),
    intake.submit(makeOrder()),
  ])
  t.same(
    results.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
  )
  t.equal((await countOrdersByStatus(db)).pending, 3)
})

/**
 * The wake-ups sent while `act` runs, in order: a due time, or 'due now'. A marker goes after them:
 * notifications arrive in commit order, so once the marker is in, every wake-up `act` sent is in
 * too, and no later one can still come.
 */
async function wakesDuring(t: Test, db: Db, act: () => Promise<void>): Promise<(number | 'due now')[]> {
  const wakes: (Date | undefined)[] = []
  const subscription = await listenForOrders(db, (dueAt) => wakes.push(dueAt))
  t.teardown(() => subscription.unsubscribe())
  wakes.length = 0 // listenForOrders also wakes once when the subscription starts
  await act()
  const marker = new Date(1)
  await notifyOrdersWaiting(db, { dueAt: marker })
  await waitFor(() => wakes.some((dueAt) => dueAt?.getTime() === marker.getTime()), {
    message: 'the marker notification',
  })
  const seen = wakes.map((dueAt) => dueAt?.getTime() ?? 'due now')
  // Returned whole, marker included, if anything came after it: the caller's check then fails.
  return seen.at(-1) === marker.getTime() ? seen.slice(0, -1) : seen
}

t.test('each commit wakes the listening workers', async (t) => {
  const db = await setUp(t)
  const intake = createOrderIntake(db, options)
  const wakes = await wakesDuring(t, db, async () => {
    await intake.submit(makeOrder())
    await intake.submitBatch([makeOrder(), makeOrder()])
    await intake.flush() // its wake-ups are sent
  })
  t.same(wakes, ['due now', 'due now'], 'two commits, two wake-ups for orders due now')
})

t.test('an idle intake announces a scheduled order with its time, and an order due now once', async (t) => {
  const db = await setUp(t)
  const intake = createOrderIntake(db, options)
  const later = new Date(Date.now() + 3_600_000)
  const wakes = await wakesDuring(t, db, async () => {
    await intake.submit(makeOrder({ runAt: later }))
    await intake.submit(makeOrder())
    await intake.flush()
  })
  t.same(
    wakes,
    [later.getTime(), 'due now'],
    'the scheduled order with its due time, then the order due now once (by its insert)',
  )
})

t.test('an unreachable database rejects every waiting submission as unavailable', async (t) => {
  const db = createDb(UNREACHABLE_DATABASE_URL, { connectTimeoutSeconds: 1 })
  t.teardown(() => closeDb(db, 0))
  const intake = createOrderIntake(db, options)
  const results = await Promise.allSettled([intake.submit(makeOrder()), intake.submit(makeOrder())])
  t.ok(results.every((r) => r.status === 'rejected' && isDatabaseUnavailable(r.reason)))
})

t.test(
  "a failure after the insert committed never stores an order twice: only the key's owners are refused",
  async (t) => {
    const db = await setUp(t)
    const intake = createOrderIntake(db, options)
    const [taken] = await Promise.all([intake.submit(makeOrder(), { key: 'taken', requestHash: 'h' })])
    t.match(taken, { stored: true })
    // The lookup of taken keys, the second statement, fails once (the connection drops, say).
    let failLookup = true
    const flaky = new Proxy(db, {
      get(target, property, receiver) {
        if (property === 'select' && failLookup) {
          failLookup = false
          return () => {
            throw Object.assign(new Error('connection lost'), { code: 'CONNECTION_CLOSED' })
          }
        }
        return Reflect.get(target, property, receiver)
      },
    })
    const flakyIntake = createOrderIntake(flaky, options)
    const results = await Promise.allSettled([
      flakyIntake.submit(makeOrder({ customerId: 'a' })),
      flakyIntake.submit(makeOrder(), { key: 'taken', requestHash: 'h' }),
      flakyIntake.submit(makeOrder({ customerId: 'b' })),
    ])
    t.same(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
      'the committed orders are answered; the replay is refused (a retry with its key is safe)',
    )
    t.equal((await countOrdersByStatus(db)).pending, 3, 'a, b and the first: nothing stored twice')
  },
)
