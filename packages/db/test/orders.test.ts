import { makeOrder, openTestDb, settleNow, waitFor } from '@postgres-queue/testkit'
import t, { type Test } from 'tap'
import {
  cancelOrder,
  claimBatch,
  countOrdersByStatus,
  type Db,
  findIdempotencyKeys,
  getOrder,
  insertOrders,
  insertSubmissions,
  listenForOrders,
  listOrders,
  notifyOrdersWaiting,
  retryOrders,
  type Submission,
} from '../src/index.js'

const setUp = (t: Test, maxConnections = 10) => openTestDb(t, { maxConnections })

/** Fails `ids` until they are dead-lettered (max_attempts 1). */
async function deadLetter(db: Db, ids: number[]): Promise<void> {
  await settleNow(db, { failed: ids, error: 'boom' })
}

t.test('insertOrders stores a batch in submission order with server-computed totals', async (t) => {
  const db = await setUp(t)
  const input = [
    makeOrder({ customerId: 'first', items: [{ sku: 'A', quantity: 3, unitPriceCents: 700 }] }),
    makeOrder({ customerId: 'second', priority: 7, maxAttempts: 9 }),
  ]
  const inserted = await insertOrders(db, input)
  t.same(
    inserted.map((o) => o.customerId),
    ['first', 'second'],
  )
  t.match(inserted[0], { totalCents: 2100, status: 'pending', attempts: 0, maxAttempts: 5, leaseToken: 0 })
  t.match(inserted[1], { totalCents: 2999, priority: 7, maxAttempts: 9 })
})

t.test('insertSubmissions without rows stores a batch and answers with its ids in submission order', async (t) => {
  const db = await setUp(t)
  t.same(await insertSubmissions(db, [], { returnRows: false }), [])
  const customers = Array.from({ length: 300 }, (_, i) => `c-${i}`)
  const [result] = await insertSubmissions(
    db,
    [
      {
        orders: customers.map((customerId) =>
          makeOrder({ customerId, items: [{ sku: 'A', quantity: 2, unitPriceCents: 5 }] }),
        ),
      },
    ],
    { returnRows: false },
  )
  if (!result?.stored) throw new Error('not stored')
  t.equal(result.ids.length, 300)
  t.same(result.orders, [], 'no rows read back')
  const stored = await Promise.all(result.ids.map((id) => getOrder(db, id)))
  t.same(
    stored.map((o) => o?.customerId),
    customers,
    'each id is the order submitted at its position',
  )
  t.ok(
    stored.every((o) => o?.status === 'pending' && o.totalCents === 10),
    'pending, with the total computed',
  )
})

t.test('insertSubmissions with notify wakes listening workers itself, for orders due now only', async (t) => {
  const db = await setUp(t)
  const wakes: string[] = []
  const subscription = await listenForOrders(db, (dueAt) => wakes.push(dueAt === undefined ? 'due now' : 'at'))
  t.teardown(() => subscription.unsubscribe())
  const later = new Date(Date.now() + 3_600_000)
  await insertSubmissions(db, [{ orders: [makeOrder()] }], { returnRows: false })
  wakes.length = 0 // listenForOrders also wakes once when the subscription starts
  await insertSubmissions(db, [{ orders: [makeOrder()] }], { returnRows: false, notify: true })
  await insertSubmissions(db, [{ orders: [makeOrder({ runAt: later })] }], { returnRows: true, notify: true })
  await insertSubmissions(db, [{ orders: [makeOrder({ runAt: later }), makeOrder()] }], {
    returnRows: true,
    notify: true,
  })
  await insertSubmissions(db, [{ orders: [makeOrder()] }], { returnRows: false })
  // Notifications arrive in commit order: once this marker is in, every earlier one is.
  await notifyOrdersWaiting(db, { dueAt: new Date(1) })
  await waitFor(() => wakes.includes('at'), { message: 'the marker notification' })
  t.same(wakes, ['due now', 'due now', 'at'], 'one wake-up for each notifying insert that stored an order due now')
})

const keyed = (key: string, hash = 'h', count = 1): Submission => ({
  orders: Array.from({ length: count }, () => makeOrder()),
  idempotency: { key, requestHash: hash },
})

t.test('one idempotency key stores once; a repeat stores nothing and the key says what it stored', async (t) => {
  const db = await setUp(t)
  const [first] = await insertSubmissions(db, [keyed('k-1', 'h')], { returnRows: true })
  const [repeat] = await insertSubmissions(db, [keyed('k-1', 'h2')], { returnRows: true })
  t.match(first, { stored: true, ids: [Number] })
  t.same(repeat, { stored: false, key: 'k-1' })
  const key = (await findIdempotencyKeys(db, ['k-1', 'unknown'])).get('k-1')
  t.match(key, { key: 'k-1', requestHash: 'h', orderIds: first?.stored ? first.ids : [] }, 'the first request is kept')
  t.equal((await countOrdersByStatus(db)).pending, 1)
})

t.test('a key covers a whole batch: its orders are stored together or not at all', async (t) => {
  const db = await setUp(t)
  const [batch] = await insertSubmissions(db, [keyed('batch-key', 'h', 3)], { returnRows: false })
  const [again] = await insertSubmissions(db, [keyed('batch-key', 'h', 3)], { returnRows: false })
  t.match(batch, { stored: true, ids: [Number, Number, Number] })
  t.match(again, { stored: false })
  t.same((await findIdempotencyKeys(db, ['batch-key'])).get('batch-key')?.orderIds, batch?.stored ? batch.ids : [])
  t.equal((await countOrdersByStatus(db)).pending, 3)
})

t.test('concurrent submissions with one key store exactly one order', async (t) => {
  const db = await setUp(t, 20)
  const results = await Promise.all(
    Array.from({ length: 20 }, () => insertSubmissions(db, [keyed('same')], { returnRows: true })),
  )
  t.equal(results.flat().filter((r) => r.stored).length, 1, 'one stored')
  t.equal((await countOrdersByStatus(db)).pending, 1)
})

t.test('keyed and unkeyed submissions in one call each get their own answer; a repeated key stores once', async (t) => {
  const db = await setUp(t)
  await insertSubmissions(db, [keyed('taken')], { returnRows: true })
  const results = await insertSubmissions(
    db,
    [
      { orders: [makeOrder({ customerId: 'a' })] },
      { ...keyed('taken'), orders: [makeOrder({ customerId: 'b' })] },
      { ...keyed('fresh'), orders: [makeOrder({ customerId: 'c' })] },
      { orders: [makeOrder({ customerId: 'd' })] },
      { ...keyed('fresh'), orders: [makeOrder({ customerId: 'e' })] },
    ],
    { returnRows: true },
  )
  t.same(
    results.map((r) => (r.stored ? r.orders.map((o) => o.customerId) : r.key)),
    [['a'], 'taken', ['c'], ['d'], 'fresh'],
  )
  t.equal((await countOrdersByStatus(db)).pending, 4)
})

t.test('cancelOrder cancels a pending order and explains why it cannot cancel others', async (t) => {
  const db = await setUp(t)
  const [pending, held, done] = await insertOrders(db, [makeOrder(), makeOrder(), makeOrder()])
  t.match(await cancelOrder(db, pending!.id), { outcome: 'cancelled', order: { status: 'cancelled' } })
  t.match(await cancelOrder(db, pending!.id), {
    outcome: 'conflict',
    reason: 'the order is cancelled; only scheduled, waiting, pending or failed orders can be',
  })
  t.same(await cancelOrder(db, 999_999), { outcome: 'not_found' })
  await db.$client`update orders set status = 'completed' where id = ${done!.id}`
  t.match(await cancelOrder(db, done!.id), {
    outcome: 'conflict',
    reason: 'the order is completed; only scheduled, waiting, pending or failed orders can be',
  })
  const [later] = await insertOrders(db, [makeOrder({ runAt: new Date(Date.now() + 60_000) })])
  t.match(await cancelOrder(db, later!.id), { outcome: 'cancelled' }, 'a scheduled order can be cancelled too')

  // A worker's batch transaction holds `held`: cancel does not wait for it.
  let release: () => void = () => {}
  let claimed: () => void = () => {}
  const hasClaimed = new Promise<void>((resolve) => (claimed = resolve))
  const holding = claimBatch(db, { limit: 10 }).then(async ({ tx }) => {
    claimed()
    await new Promise<void>((resolve) => (release = resolve))
    await tx.rollback()
  })
  await hasClaimed
  t.match(await cancelOrder(db, held!.id), { outcome: 'conflict', reason: 'the order is being processed' })
  release()
  await holding
})

t.test('retryOrders redrives failed orders only, with a fresh set of attempts', async (t) => {
  const db = await setUp(t)
  const orders = await insertOrders(db, [
    makeOrder({ maxAttempts: 1 }),
    makeOrder({ maxAttempts: 1 }),
    makeOrder({ maxAttempts: 1 }),
    makeOrder(),
  ])
  const [a, b, c, untouched] = orders.map((o) => o.id) as [number, number, number, number]
  await deadLetter(db, [a, b, c])
  t.match(await getOrder(db, a), { status: 'failed', attempts: 1, lastError: 'boom' })

  t.same(await retryOrders(db, { ids: [a, untouched], limit: 100 }), [a], 'only failed orders are retried')
  t.match(await getOrder(db, a), { status: 'pending', attempts: 0, lastError: 'boom' })
  t.same(await retryOrders(db, { limit: 1 }), [b], 'the limit holds, oldest first')
  t.same(await retryOrders(db, { limit: 100 }), [c])
  t.same(await retryOrders(db, { limit: 100 }), [])
})

t.test('a failed attempt dead-letters at max_attempts and otherwise backs off', async (t) => {
  const db = await setUp(t)
  const [last, spare] = await insertOrders(db, [makeOrder({ maxAttempts: 1 }), makeOrder({ maxAttempts: 3 })])
  const before = Date.now()
  const outcomes = await settleNow(db, { failed: [last!.id, spare!.id], backoffMs: 10_000 })
  t.same(
    new Map(outcomes.failed.map((o) => [o.id, o.status])),
    new Map([
      [last!.id, 'failed'],
      [spare!.id, 'scheduled'],
    ]),
  )
  const retrying = await getOrder(db, spare!.id)
  const delay = retrying!.runAt.getTime() - before
  t.ok(delay >= 4_000 && delay <= 11_000, `backoff within [base/2, base]: ${delay} ms`)
})

t.test('listOrders pages oldest first by default and newest first with order desc', async (t) => {
  const db = await setUp(t)
  const ids = (
    await insertOrders(
      db,
      Array.from({ length: 5 }, () => makeOrder({ maxAttempts: 1 })),
    )
  ).map((o) => o.id)
  await deadLetter(db, [ids[1]!, ids[2]!, ids[4]!])
  const page = async (query: Parameters<typeof listOrders>[1]) => (await listOrders(db, query)).map((o) => o.id)

  t.same(await page({ limit: 2 }), ids.slice(0, 2), 'ascending by default')
  t.same(await page({ limit: 2, after: ids[1] }), ids.slice(2, 4), 'after: ids above the cursor')
  t.same(await page({ limit: 2, order: 'desc' }), [ids[4], ids[3]], 'newest first')
  t.same(await page({ limit: 2, order: 'desc', after: ids[3] }), [ids[2], ids[1]], 'after: ids below the cursor')
  t.same(await page({ limit: 10, order: 'desc', status: 'failed' }), [ids[4], ids[2], ids[1]], 'latest failed first')
  t.same(await page({ limit: 10, order: 'desc', status: 'failed', after: ids[1] }), [], 'past the oldest: empty')
})
