import { setTimeout as sleep } from 'node:timers/promises'
import { createTestDatabase, makeOrder } from '@postgres-queue/devkit'
import t, { type Test } from 'tap'
import {
  closeDb,
  completeLeasedOrders,
  createDb,
  type Db,
  extendLeases,
  failLeasedOrders,
  getOrder,
  insertOrders,
  leaseOrders,
  lockLeasedOrders,
  releaseLeasedOrders,
} from '../src/index.js'

const noBackoff = { baseMs: 0, maxMs: 0 }

async function setUp(t: Test): Promise<Db> {
  const db = createDb(await createTestDatabase(t))
  t.teardown(() => closeDb(db))
  return db
}

t.test('a lease is one committed claim: processing, holder, expiry, and the attempt counted', async (t) => {
  const db = await setUp(t)
  const [order] = await insertOrders(db, [makeOrder()])
  const before = Date.now()
  const { leased } = await leaseOrders(db, { limit: 10, workerId: 'a', leaseMs: 30_000 })
  t.same(
    leased.map((l) => [l.order.id, l.attempt]),
    [[order!.id, 1]],
  )
  t.ok(leased[0]!.order.runAt <= new Date(), 'the returned run_at is when it became claimable')
  const stored = await getOrder(db, order!.id)
  t.match(stored, { status: 'processing', lockedBy: 'a', attempts: 1 })
  t.ok(stored!.runAt.getTime() >= before + 29_000, 'run_at holds the lease expiry')
  const again = await leaseOrders(db, { limit: 10, workerId: 'b', leaseMs: 30_000 })
  t.same(again.leased, [], 'a live lease is not claimable')
})

t.test('concurrent lease claims take disjoint orders', async (t) => {
  const db = await setUp(t)
  const inserted = await insertOrders(db, Array.from({ length: 300 }, () => makeOrder()))
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, i) => leaseOrders(db, { limit: 60, workerId: `w${i}`, leaseMs: 30_000 })),
  )
  const ids = results.flatMap((r) => r.leased.map((l) => l.order.id))
  t.equal(new Set(ids).size, ids.length, 'no order leased twice')
  t.same(
    [...ids].sort((a, b) => a - b),
    inserted.map((o) => o.id),
  )
})

t.test("a lapsed lease is claimed again by the same statement, and the old holder's completion is fenced out", async (t) => {
  const db = await setUp(t)
  const [order] = await insertOrders(db, [makeOrder()])
  const first = await leaseOrders(db, { limit: 1, workerId: 'slow', leaseMs: 50 })
  await sleep(100)
  const second = await leaseOrders(db, { limit: 1, workerId: 'fresh', leaseMs: 30_000 })
  t.same(
    second.leased.map((l) => [l.order.id, l.attempt]),
    [[order!.id, 2]],
    'the takeover is attempt 2',
  )
  const stale = { id: order!.id, attempt: first.leased[0]!.attempt }
  const staleOutcome = await db.transaction(async (tx) => ({
    held: await lockLeasedOrders(tx, { leases: [stale], workerId: 'slow' }),
    completed: await completeLeasedOrders(tx, { leases: [stale], workerId: 'slow' }),
  }))
  t.same(staleOutcome, { held: [], completed: [] }, 'the old holder holds and completes nothing')
  t.same(await extendLeases(db, { leases: [stale], workerId: 'slow', leaseMs: 30_000 }), [], 'nor can it heartbeat')
  const fresh = { id: order!.id, attempt: 2 }
  t.same(await db.transaction((tx) => completeLeasedOrders(tx, { leases: [fresh], workerId: 'fresh' })), [order!.id])
  t.match(await getOrder(db, order!.id), { status: 'completed', completedBy: 'fresh', attempts: 2, lockedBy: null })
})

t.test('a heartbeat keeps a lease alive past its first expiry', async (t) => {
  const db = await setUp(t)
  const [order] = await insertOrders(db, [makeOrder()])
  const { leased } = await leaseOrders(db, { limit: 1, workerId: 'a', leaseMs: 100 })
  const lease = { id: order!.id, attempt: leased[0]!.attempt }
  for (let i = 0; i < 4; i++) {
    await sleep(50)
    t.same(await extendLeases(db, { leases: [lease], workerId: 'a', leaseMs: 100 }), [order!.id])
  }
  t.same((await leaseOrders(db, { limit: 1, workerId: 'b', leaseMs: 100 })).leased, [], 'still held at 200 ms')
})

t.test('an order whose lease lapses on every attempt is dead-lettered by the claim', async (t) => {
  const db = await setUp(t)
  const [order] = await insertOrders(db, [makeOrder({ maxAttempts: 2 })])
  t.equal((await leaseOrders(db, { limit: 1, workerId: 'dies-1', leaseMs: 1 })).leased.length, 1)
  await sleep(20)
  t.equal((await leaseOrders(db, { limit: 1, workerId: 'dies-2', leaseMs: 1 })).leased.length, 1)
  await sleep(20)
  const third = await leaseOrders(db, { limit: 1, workerId: 'survivor', leaseMs: 1000 })
  t.same(third.leased, [], 'not handed out a third time')
  t.same(
    third.deadLettered.map((o) => o.id),
    [order!.id],
  )
  t.match(await getOrder(db, order!.id), { status: 'failed', attempts: 2, lockedBy: null, lastError: /lease expired/ })
})

t.test('a failed leased attempt backs off, and the last one dead-letters', async (t) => {
  const db = await setUp(t)
  const [order] = await insertOrders(db, [makeOrder({ maxAttempts: 2 })])
  const policy = { baseMs: 60_000, maxMs: 600_000 }
  const first = await leaseOrders(db, { limit: 1, workerId: 'a', leaseMs: 30_000 })
  const failure = { id: order!.id, attempt: first.leased[0]!.attempt, error: 'gateway timeout' }
  const before = Date.now()
  t.same(await db.transaction((tx) => failLeasedOrders(tx, { failures: [failure], workerId: 'a', policy })), [
    { id: order!.id, status: 'pending' },
  ])
  const retrying = await getOrder(db, order!.id)
  const delay = retrying!.runAt.getTime() - before
  t.ok(delay >= 29_000 && delay <= 61_000, `first retry after base x [0.5, 1): ${delay} ms`)
  t.match(retrying, { attempts: 1, lastError: 'gateway timeout', lockedBy: null })

  await db.$client`update orders set run_at = now() where id = ${order!.id}`
  const second = await leaseOrders(db, { limit: 1, workerId: 'b', leaseMs: 30_000 })
  const last = { id: order!.id, attempt: second.leased[0]!.attempt, error: 'gateway timeout again' }
  t.same(await db.transaction((tx) => failLeasedOrders(tx, { failures: [last], workerId: 'b', policy: noBackoff })), [
    { id: order!.id, status: 'failed' },
  ])
  t.match(await getOrder(db, order!.id), { status: 'failed', attempts: 2, lastError: 'gateway timeout again' })
})

t.test('releasing an unstarted lease makes the order due at once and takes the attempt back', async (t) => {
  const db = await setUp(t)
  const [order] = await insertOrders(db, [makeOrder()])
  const { leased } = await leaseOrders(db, { limit: 1, workerId: 'a', leaseMs: 30_000 })
  t.same(await releaseLeasedOrders(db, { leases: [{ id: order!.id, attempt: leased[0]!.attempt }], workerId: 'a' }), [
    order!.id,
  ])
  t.match(await getOrder(db, order!.id), { status: 'pending', attempts: 0, lockedBy: null })
  t.equal((await leaseOrders(db, { limit: 1, workerId: 'b', leaseMs: 30_000 })).leased.length, 1)
})
