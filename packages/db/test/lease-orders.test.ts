import { setTimeout as sleep } from 'node:timers/promises'
import { makeOrder, openTestDb } from '@postgres-queue/testkit'
import t, { type Test } from 'tap'
import {
  type Db,
  extendLeases,
  getOrder,
  insertOrders,
  type Lease,
  leaseOrders,
  lockLeasedOrders,
  promoteDueOrders,
  releaseLeasedOrders,
  retryOrders,
  settleLeasedBatch,
  settleLeasedOrders,
  sql,
} from '../src/index.js'

const noBackoff = { baseMs: 0, maxMs: 0 }

const complete = (db: Db, lease: Lease, workerId: string) =>
  settleLeasedOrders(db, { succeeded: [lease], failures: [], workerId, policy: noBackoff })
const fail = (db: Db, lease: Lease, error: string, policy = noBackoff) =>
  settleLeasedOrders(db, { succeeded: [], failures: [{ ...lease, error }], workerId: 'w', policy })

const setUp = (t: Test) => openTestDb(t)

async function leaseOne(db: Db, workerId: string, leaseMs = 30_000): Promise<Lease> {
  const [leased] = await leaseOrders(db, { limit: 1, workerId, leaseMs })
  if (!leased) throw new Error('nothing leased')
  return leased.lease
}

/** Makes every lease lapse now, as if its holder had gone silent for a lease period. */
async function lapseLeases(db: Db): Promise<void> {
  await db.execute(sql`update orders set run_at = now() - interval '1 millisecond' where status = 'processing'`)
}

t.test(
  'a lease is one committed claim: processing, holder, expiry, a new token, and the attempt counted',
  async (t) => {
    const db = await setUp(t)
    const [order] = await insertOrders(db, [makeOrder()])
    const before = Date.now()
    const leased = await leaseOrders(db, { limit: 10, workerId: 'a', leaseMs: 30_000 })
    t.same(
      leased.map((l) => [l.order.id, l.lease.attempt, l.lease.token]),
      [[order!.id, 1, 1]],
    )
    t.ok(leased[0]!.order.runAt <= new Date(), 'the returned run_at is when it became due')
    const stored = await getOrder(db, order!.id)
    t.match(stored, { status: 'processing', lockedBy: 'a', attempts: 1, leaseToken: 1 })
    t.ok(stored!.runAt.getTime() >= before + 29_000, 'run_at holds the lease expiry')
    t.same(await leaseOrders(db, { limit: 10, workerId: 'b', leaseMs: 30_000 }), [], 'a live lease is not claimable')
  },
)

t.test('concurrent lease claims take disjoint orders', async (t) => {
  const db = await setUp(t)
  const inserted = await insertOrders(
    db,
    Array.from({ length: 300 }, () => makeOrder()),
  )
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, i) => leaseOrders(db, { limit: 60, workerId: `w${i}`, leaseMs: 30_000 })),
  )
  const ids = results.flatMap((r) => r.map((l) => l.order.id))
  t.equal(new Set(ids).size, ids.length, 'no order leased twice')
  t.same(
    [...ids].sort((a, b) => a - b),
    inserted.map((o) => o.id),
  )
})

t.test("a lapsed lease is rescued and leased again, and the old holder's completion is fenced out", async (t) => {
  const db = await setUp(t)
  const [order] = await insertOrders(db, [makeOrder()])
  const stale = await leaseOne(db, 'slow')
  t.same(await leaseOrders(db, { limit: 1, workerId: 'fresh', leaseMs: 30_000 }), [], 'not claimable while leased')
  await lapseLeases(db)
  t.match(await promoteDueOrders(db, { limit: 10 }), {
    promoted: 0,
    rescued: [{ id: order!.id, heldBy: 'slow' }],
    deadLettered: [],
  })
  const fresh = await leaseOne(db, 'fresh')
  t.match(fresh, { id: order!.id, attempt: 2, token: 2 }, 'the takeover is attempt 2, under a new token')
  const locked = await lockLeasedOrders(db, { leases: [stale] })
  const staleOutcome = await settleLeasedBatch(locked.tx, {
    succeeded: [stale],
    failures: [],
    workerId: 'slow',
    policy: noBackoff,
  })
  t.same(locked.held, new Set(), 'the old holder locks nothing')
  t.same(staleOutcome, { completed: [], failed: [], promoted: [] }, 'and completes nothing')
  t.same(await extendLeases(db, { leases: [stale], leaseMs: 30_000 }), [], 'nor can it heartbeat')
  t.same(await complete(db, fresh, 'fresh'), { completed: [order!.id], failed: [], promoted: [] })
  t.match(await getOrder(db, order!.id), { status: 'completed', completedBy: 'fresh', attempts: 2, lockedBy: null })
})

t.test('a redrive resets attempts but not the token: an old holder cannot pass the fence (no ABA)', async (t) => {
  const db = await setUp(t)
  const [order] = await insertOrders(db, [makeOrder({ maxAttempts: 1 })])
  const stale = await leaseOne(db, 'paused')
  await lapseLeases(db)
  t.match(await promoteDueOrders(db, { limit: 10 }), { deadLettered: [{ id: order!.id, attempts: 1 }] })
  t.same(await retryOrders(db, { ids: [order!.id], limit: 1 }), [order!.id], 'redriven: attempts back to 0')
  const fresh = await leaseOne(db, 'fresh')
  t.equal(fresh.attempt, stale.attempt, 'the new lease is attempt 1 again: an attempts fence would match')
  t.not(fresh.token, stale.token)
  t.same(await complete(db, stale, 'paused'), { completed: [], failed: [], promoted: [] })
  t.match(await getOrder(db, order!.id), { status: 'processing', lockedBy: 'fresh' })
})

t.test('a heartbeat keeps a lease alive, and extends one that lapsed but was not rescued yet', async (t) => {
  const db = await setUp(t)
  const [order] = await insertOrders(db, [makeOrder()])
  const lease = await leaseOne(db, 'a', 100)
  // Time passing is the point: 200 ms, twice the lease, kept by a heartbeat every 50 ms.
  for (let i = 0; i < 4; i++) {
    await sleep(50)
    t.same(await extendLeases(db, { leases: [lease], leaseMs: 100 }), [order!.id])
  }
  t.match(await promoteDueOrders(db, { limit: 10 }), { rescued: [] }, 'still held at 200 ms: nothing to rescue')
  await lapseLeases(db)
  t.same(await extendLeases(db, { leases: [lease], leaseMs: 30_000 }), [order!.id], 'nobody else has it yet')
  t.match(await promoteDueOrders(db, { limit: 10 }), { rescued: [] })
})

t.test('an order whose lease lapses on every attempt is dead-lettered by the rescue', async (t) => {
  const db = await setUp(t)
  const [order] = await insertOrders(db, [makeOrder({ maxAttempts: 2 })])
  await leaseOne(db, 'dies-1')
  await lapseLeases(db)
  t.match(await promoteDueOrders(db, { limit: 10 }), { rescued: [{ id: order!.id, heldBy: 'dies-1' }] })
  await leaseOne(db, 'dies-2')
  await lapseLeases(db)
  t.match(await promoteDueOrders(db, { limit: 10 }), { rescued: [], deadLettered: [{ id: order!.id, attempts: 2 }] })
  t.same(await leaseOrders(db, { limit: 1, workerId: 'survivor', leaseMs: 1000 }), [], 'not handed out a third time')
  t.match(await getOrder(db, order!.id), { status: 'failed', attempts: 2, lockedBy: null, lastError: /lease expired/ })
})

t.test('a failed leased attempt backs off, and the last one dead-letters', async (t) => {
  const db = await setUp(t)
  const [order] = await insertOrders(db, [makeOrder({ maxAttempts: 2 })])
  const policy = { baseMs: 60_000, maxMs: 600_000 }
  const first = await leaseOne(db, 'a')
  const before = Date.now()
  const {
    failed: [retry],
  } = await fail(db, first, 'gateway timeout', policy)
  t.match(retry, { id: order!.id, status: 'scheduled' })
  const delay = retry!.runAt.getTime() - before
  t.ok(delay >= 29_000 && delay <= 61_000, `first retry after base x [0.5, 1): ${delay} ms`)
  t.match(await getOrder(db, order!.id), {
    status: 'scheduled',
    attempts: 1,
    lastError: 'gateway timeout',
    lockedBy: null,
  })

  await db.execute(sql`update orders set run_at = now() where id = ${order!.id}`)
  t.match(await promoteDueOrders(db, { limit: 10 }), { promoted: 1 })
  const second = await leaseOne(db, 'b')
  t.match((await fail(db, second, 'gateway timeout again')).failed, [{ id: order!.id, status: 'failed' }])
  t.match(await getOrder(db, order!.id), { status: 'failed', attempts: 2, lastError: 'gateway timeout again' })
})

t.test('releasing an unstarted lease puts the order back in its place and takes the attempt back', async (t) => {
  const db = await setUp(t)
  const [first, second] = await insertOrders(db, [makeOrder(), makeOrder()])
  const [leased] = await leaseOrders(db, { limit: 1, workerId: 'a', leaseMs: 30_000 })
  t.equal(leased!.order.id, first!.id)
  t.same(await releaseLeasedOrders(db, { leases: [{ ...leased!.lease, dueAt: leased!.order.runAt }] }), [first!.id])
  t.match(await getOrder(db, first!.id), { status: 'pending', attempts: 0, lockedBy: null, runAt: first!.runAt })
  const again = await leaseOrders(db, { limit: 2, workerId: 'b', leaseMs: 30_000 })
  t.same(
    again.map((l) => l.order.id),
    [first!.id, second!.id],
    'still ahead of the order submitted after it',
  )
})

t.test('lockLeasedOrders locks what the leases hold: a rescue cannot take it until the commit', async (t) => {
  const db = await setUp(t)
  const [order] = await insertOrders(db, [makeOrder()])
  const lease = await leaseOne(db, 'a')
  await lapseLeases(db) // lapsed, but not rescued yet: still held
  const locked = await lockLeasedOrders(db, { leases: [lease] })
  t.same(locked.held, new Set([order!.id]))
  t.match(await promoteDueOrders(db, { limit: 10 }), { rescued: [] }, 'the rescue skips it while it is locked')
  t.match(await settleLeasedBatch(locked.tx, { succeeded: [lease], failures: [], workerId: 'a', policy: noBackoff }), {
    completed: [order!.id],
  })
})
