import { makeOrder, openTestDb } from '@postgres-queue/testkit'
import { sql } from 'drizzle-orm'
import t, { type Test } from 'tap'
import {
  claimBatch,
  claimStatement,
  type Db,
  getOrder,
  insertOrders,
  type Order,
  settleBatch,
  settleBatchAndClaimNext,
} from '../src/index.js'

const setUp = (t: Test) => openTestDb(t, { maxConnections: 20 })

/** Holds a claim open until `release` resolves, the way a worker holds its batch transaction. */
function holdClaim(db: Db, limit: number, release: Promise<void>): { claimed: Promise<Order[]>; done: Promise<void> } {
  const batch = claimBatch(db, { limit })
  const done = batch.then(async ({ tx }) => {
    await release
    await tx.rollback()
  })
  return { claimed: batch.then((b) => b.orders), done }
}

/** Claims and releases at once: which orders a claim would take now. */
async function peekClaim(db: Db, limit: number, ids?: number[]): Promise<Order[]> {
  const { tx, orders } = await claimBatch(db, { limit, ids })
  await tx.rollback()
  return orders
}

const noBackoff = { baseMs: 0, maxMs: 0 }

t.test('concurrent claimers take disjoint rows whose union is every claimable row', async (t) => {
  const db = await setUp(t)
  const inserted = await insertOrders(
    db,
    Array.from({ length: 200 }, () => makeOrder()),
  )
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => (release = resolve))
  const claims = Array.from({ length: 8 }, () => holdClaim(db, 30, released))
  const batches = await Promise.all(claims.map((c) => c.claimed))
  release()
  await Promise.all(claims.map((c) => c.done))

  const ids = batches.flat().map((o) => o.id)
  t.equal(new Set(ids).size, ids.length, 'no row is claimed twice')
  t.same(
    [...ids].sort((a, b) => a - b),
    inserted.map((o) => o.id),
    'every claimable row is claimed',
  )
  t.ok(
    batches.every((b) => b.length <= 30),
    'no claimer gets more than its limit',
  )
})

t.test('a claim returns at most its limit, highest priority first, then oldest', async (t) => {
  const db = await setUp(t)
  const [low, high, , urgent] = await insertOrders(db, [
    makeOrder({ priority: 0 }),
    makeOrder({ priority: 5 }),
    makeOrder({ priority: 0 }),
    makeOrder({ priority: 9 }),
  ])
  const claimed = await peekClaim(db, 3)
  t.same(
    claimed.map((o) => o.id),
    [urgent!.id, high!.id, low!.id],
  )
})

t.test('an order due later is scheduled, and not claimed until promoted', async (t) => {
  const db = await setUp(t)
  const [due, later] = await insertOrders(db, [makeOrder(), makeOrder({ runAt: new Date(Date.now() + 60_000) })])
  t.equal(due!.status, 'pending')
  t.equal(later!.status, 'scheduled')
  const claimed = await peekClaim(db, 10)
  t.same(
    claimed.map((o) => o.id),
    [due!.id],
  )
})

t.test(
  'a runAt in the past means now: the order is pending, due at its submission, not ahead of the queue',
  async (t) => {
    const db = await setUp(t)
    const [first] = await insertOrders(db, [makeOrder()])
    const [backdated] = await insertOrders(db, [makeOrder({ runAt: new Date('1970-01-01T00:00:00Z') })])
    t.equal(backdated!.status, 'pending')
    t.ok(backdated!.runAt.getTime() >= backdated!.createdAt.getTime(), 'run_at is clamped to the submission time')
    const claimed = await peekClaim(db, 10)
    t.same(
      claimed.map((o) => o.id),
      [first!.id, backdated!.id],
      'the backdated order waits its turn',
    )
  },
)

t.test('a claim narrowed to ids takes only those, still skipping what others hold', async (t) => {
  const db = await setUp(t)
  const [a, b, c] = await insertOrders(db, [makeOrder(), makeOrder(), makeOrder()])
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => (release = resolve))
  const held = holdClaim(db, 1, released) // holds a, the first in claim order
  t.same(
    (await held.claimed).map((o) => o.id),
    [a!.id],
  )
  const claimed = await peekClaim(db, 3, [a!.id, c!.id])
  release()
  await held.done
  t.same(
    claimed.map((o) => o.id),
    [c!.id],
    'a is held by the other claim, b is not asked for',
  )
  t.not(b!.id, c!.id)
})

t.test('orders of a rolled-back batch are claimable again at once, untouched', async (t) => {
  const db = await setUp(t)
  const inserted = await insertOrders(db, [makeOrder(), makeOrder()])
  const { tx } = await claimBatch(db, { limit: 10 })
  await tx.rollback() // the worker died: its connection dropped, the server rolled back
  const reclaimed = await peekClaim(db, 10)
  t.same(
    reclaimed.map((o) => o.id),
    inserted.map((o) => o.id),
  )
  t.ok(reclaimed.every((o) => o.status === 'pending' && o.attempts === 0 && o.completedBy === null))
})

t.test('settling completes and fails in one statement, counting the attempt, and commits', async (t) => {
  const db = await setUp(t)
  const [ok, bad] = await insertOrders(db, [makeOrder(), makeOrder()])
  const { tx } = await claimBatch(db, { limit: 10 })
  const outcomes = await settleBatch(tx, {
    completed: [ok!.id],
    failures: [{ id: bad!.id, attempt: 1, error: 'card declined' }],
    workerId: 'worker-a',
    policy: noBackoff,
  })
  t.match(outcomes, { failed: [{ id: bad!.id, status: 'pending', runAt: Date }], promoted: [] })
  const completed = await getOrder(db, ok!.id)
  t.match(completed, { status: 'completed', attempts: 1, completedBy: 'worker-a', completedAt: Date })
  const failed = await getOrder(db, bad!.id)
  t.match(failed, { status: 'pending', attempts: 1, lastError: 'card declined', completedAt: null })
  const again = await peekClaim(db, 10)
  t.same(
    again.map((o) => o.id),
    [bad!.id],
    'a failed attempt is claimable again; a completed order is not',
  )
})

t.test('settling can claim the next batch in the same write: the first commits, the next is held', async (t) => {
  const db = await setUp(t)
  const inserted = await insertOrders(
    db,
    Array.from({ length: 5 }, () => makeOrder()),
  )
  const ids = inserted.map((o) => o.id)
  const first = await claimBatch(db, { limit: 2 })
  const settled = await settleBatchAndClaimNext(
    first.tx,
    { completed: first.orders.map((o) => o.id), failures: [], workerId: 'w', policy: noBackoff },
    { limit: 2 },
  )
  t.same(settled.failed, [])
  t.same(
    settled.next?.orders.map((o) => o.id),
    ids.slice(2, 4),
    'the next two in claim order',
  )
  t.match(await getOrder(db, ids[0]!), { status: 'completed', attempts: 1 }, 'the first batch committed')
  t.same(
    (await peekClaim(db, 10)).map((o) => o.id),
    [ids[4]],
    'the next batch is locked by its open transaction',
  )
  await settled.next?.tx.rollback()
  t.same(
    (await peekClaim(db, 10)).map((o) => o.id),
    ids.slice(2),
    'and rolled back, it is claimable again, untouched',
  )
  t.match(await getOrder(db, ids[2]!), { status: 'pending', attempts: 0 })
})

t.test('a settlement that fails commits nothing and takes no next batch', async (t) => {
  const db = await setUp(t)
  const inserted = await insertOrders(
    db,
    Array.from({ length: 4 }, () => makeOrder()),
  )
  const first = await claimBatch(db, { limit: 2 })
  // A NUL byte is refused by PostgreSQL's text type: the settling statement fails.
  await t.rejects(
    settleBatchAndClaimNext(
      first.tx,
      {
        completed: [],
        failures: first.orders.map((o) => ({ id: o.id, attempt: 1, error: 'bad \u0000' })),
        workerId: 'w',
        policy: noBackoff,
      },
      { limit: 2 },
    ),
  )
  t.same(
    (await peekClaim(db, 10)).map((o) => o.id),
    inserted.map((o) => o.id),
    'every order claimable, none held',
  )
  t.ok(
    (await peekClaim(db, 10)).every((o) => o.attempts === 0),
    'no attempt counted',
  )
})

t.test('a failed attempt with a backoff is scheduled for then; on its last attempt it is failed', async (t) => {
  const db = await setUp(t)
  const [retried, last] = await insertOrders(db, [makeOrder(), makeOrder({ maxAttempts: 1 })])
  const before = Date.now()
  const { tx } = await claimBatch(db, { limit: 10 })
  const outcomes = await settleBatch(tx, {
    completed: [],
    failures: [
      { id: retried!.id, attempt: 1, error: 'timeout' },
      { id: last!.id, attempt: 1, error: 'timeout' },
    ],
    workerId: 'w',
    policy: { baseMs: 60_000, maxMs: 60_000 },
  })
  const byId = new Map(outcomes.failed.map((o) => [o.id, o]))
  t.equal(byId.get(retried!.id)?.status, 'scheduled')
  const delay = (byId.get(retried!.id)?.runAt.getTime() ?? 0) - before
  t.ok(delay >= 29_000 && delay <= 61_000, `jittered into [base/2, base): ${delay} ms`)
  t.equal(byId.get(last!.id)?.status, 'failed')
  t.same(await peekClaim(db, 10), [], 'neither is claimable')
})

t.test('the claim reads the partial index in claim order and stops at the limit', async (t) => {
  const db = await setUp(t)
  // A history of finished orders and a backlog, so a plan that ignored the index would show.
  await db.execute(sql`
    insert into orders (customer_id, currency, items, total_cents, status)
    select 'c', 'EUR', '[{"sku":"s","quantity":1,"unitPriceCents":1}]', 1,
           case when g % 10 = 0 then 'pending' else 'completed' end
    from generate_series(1, 20000) g`)
  await db.execute(sql`analyze orders`)
  const claim = claimStatement.bind(db, { limit: 50 })
  const plan = JSON.stringify(
    (await db.$client.unsafe(`explain (format json) ${claim.sql}`, claim.params as never[]))[0],
  )
  t.match(plan, /"Node Type":"Limit".*"Node Type":"LockRows".*"Index Name":"orders_claim_idx"/)
  t.notMatch(plan, /"Node Type":"Sort"/, 'no sort: the index supplies the claim order')
})

t.test('a delayed backlog of higher priority costs the claim nothing: it reads due orders only', async (t) => {
  const db = await setUp(t)
  await insertOrders(
    db,
    Array.from({ length: 100 }, () => makeOrder({ priority: -1000 })),
  )
  const claimBuffers = async () => {
    await db.execute(sql`vacuum analyze orders`)
    const claim = claimStatement.bind(db, { limit: 1 })
    return db.transaction(async (tx) => {
      const [row] = await tx.execute(sql.raw(`explain (analyze, buffers, format json) ${claim.sql.replace('$1', '1')}`))
      const { Plan: plan } = (row as { 'QUERY PLAN': [{ Plan: Record<string, number> }] })['QUERY PLAN'][0]
      t.equal(plan['Actual Rows'], 1, 'one due order claimed')
      return (plan['Shared Hit Blocks'] ?? 0) + (plan['Shared Read Blocks'] ?? 0)
    })
  }
  const without = await claimBuffers()
  // 30,000 orders scheduled for tomorrow at the highest priority: a claim that stepped over them to
  // reach the due ones would read about a hundred more index pages.
  await db.execute(sql`
    insert into orders (customer_id, currency, items, total_cents, status, priority, run_at)
    select 'c', 'EUR', '[{"sku":"s","quantity":1,"unitPriceCents":1}]', 1, 'scheduled', 1000, now() + interval '1 day'
    from generate_series(1, 30000)`)
  const beside = await claimBuffers()
  t.ok(beside <= without + 2, `buffers per claim: ${without} alone, ${beside} beside 30,000 scheduled orders`)
})
