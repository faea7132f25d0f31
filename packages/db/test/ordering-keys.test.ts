import { makeOrder, openTestDb, settleNow, waitFor } from '@postgres-queue/testkit'
import t, { type Test } from 'tap'
import {
  cancelOrder,
  claimBatch,
  claimStatement,
  countOrdersByStatus,
  type Db,
  deleteIdleOrderingKeys,
  getBlockedKeys,
  getOrder,
  getQueueStats,
  insertOrders,
  keysOf,
  leaseOrders,
  listOrders,
  type NewOrder,
  type Order,
  promoteDueOrders,
  retryOrders,
  settleBatch,
  settleLeasedOrders,
  skipOrder,
  sql,
  submitOrder,
  submitOrders,
} from '../src/index.js'

// Per-key FIFO (ordering-keys.ts): the orders of one orderingKey run one at a time, in id order,
// in both modes; keys do not hold each other or unkeyed orders back.

const setUp = (t: Test) => openTestDb(t, { maxConnections: 20 })

/** Which orders a claim would take now, by id. */
async function claimableIds(db: Db, limit = 100): Promise<number[]> {
  const { tx, orders } = await claimBatch(db, { limit })
  await tx.rollback()
  return orders.map((o) => o.id).sort((a, b) => a - b)
}

const statuses = async (db: Db, ids: readonly number[]) =>
  Promise.all(ids.map(async (id) => (await getOrder(db, id))!.status))

const ids = (orders: readonly Order[]) => orders.map((o) => o.id)

t.test("only a key's oldest order is claimable; the rest wait, and other keys and unkeyed orders do not", async (t) => {
  const db = await setUp(t)
  const a = await insertOrders(db, [makeOrder({ orderingKey: 'a' }), makeOrder({ orderingKey: 'a' })])
  const [b1, unkeyed, a3, b2] = await insertOrders(db, [
    makeOrder({ orderingKey: 'b' }),
    makeOrder(),
    makeOrder({ orderingKey: 'a' }),
    makeOrder({ orderingKey: 'b' }),
  ])
  t.same(await statuses(db, [...ids(a), a3!.id]), ['pending', 'waiting', 'waiting'])
  t.same(await statuses(db, [b1!.id, b2!.id, unkeyed!.id]), ['pending', 'waiting', 'pending'])
  t.same(await claimableIds(db), [a[0]!.id, b1!.id, unkeyed!.id], 'one head per key, and every unkeyed order')
  t.same(
    ids(await listOrders(db, { orderingKey: 'a', limit: 10, order: 'asc' })),
    [...ids(a), a3!.id],
    'listOrders filters by key',
  )
  t.equal((await countOrdersByStatus(db)).waiting, 3)
  t.equal((await getQueueStats(db)).counts.pending, 3, 'queue depth counts only what can be claimed now')
})

t.test('completing the head promotes the next order of its key in the same transaction, in id order', async (t) => {
  const db = await setUp(t)
  const line = await insertOrders(
    db,
    Array.from({ length: 5 }, (_, i) => makeOrder({ orderingKey: 'k', priority: i * 10 })),
  )
  const ran: number[] = []
  for (;;) {
    const [head, ...more] = await claimableIds(db)
    if (head === undefined) break
    t.same(more, [], 'never two of one key at once')
    ran.push(head)
    const { promoted } = await settleNow(db, { completed: [head] })
    t.same(ids(promoted as Order[]), ran.length < line.length ? [line[ran.length]!.id] : [])
  }
  t.same(ran, ids(line), 'submission order, although each later order has a higher priority')
  t.same(await statuses(db, ids(line)), Array(5).fill('completed'))
})

t.test('priority orders keys, never the orders inside one', async (t) => {
  const db = await setUp(t)
  const [low] = await insertOrders(db, [makeOrder({ orderingKey: 'slow', priority: 0 })])
  const [, urgentLater] = await insertOrders(db, [
    makeOrder({ orderingKey: 'slow', priority: 100 }),
    makeOrder({ orderingKey: 'fast', priority: 50 }),
  ])
  const { tx, orders } = await claimBatch(db, { limit: 10 })
  await tx.rollback()
  t.same(ids(orders), [urgentLater!.id, low!.id], 'the urgent key first; the urgent order of slow waits for its head')
})

t.test('a head waiting for its retry holds its key; a dead letter holds it until redriven', async (t) => {
  const db = await setUp(t)
  const [head, next] = await insertOrders(db, [
    makeOrder({ orderingKey: 'k', maxAttempts: 2 }),
    makeOrder({ orderingKey: 'k' }),
  ])
  const { failed } = await settleNow(db, { failed: [head!.id], backoffMs: 60_000 })
  t.match(failed, [{ id: head!.id, status: 'scheduled' }])
  t.same(await claimableIds(db), [], 'the next order waits through its head’s backoff')
  await db.execute(sql`update orders set run_at = now() where id = ${head!.id}`)
  await promoteDueOrders(db, { limit: 10 })
  t.same(await claimableIds(db), [head!.id], 'the head is retried first')
  await settleNow(db, { failed: [head!.id] })
  t.same(await statuses(db, [head!.id, next!.id]), ['failed', 'waiting'], 'dead-lettered: it still holds the key')
  t.same(await claimableIds(db), [])
  t.match(await getBlockedKeys(db, { limit: 10 }), {
    count: 1,
    onFailed: 1,
    oldest: [{ key: 'k', head: { id: head!.id, status: 'failed' }, waiting: 1, waitingSince: Date }],
  })
  t.same(await retryOrders(db, { ids: [head!.id], limit: 10 }), [head!.id])
  t.same(await claimableIds(db), [head!.id], 'redriven, it runs before the orders behind it')
  await settleNow(db, { completed: [head!.id] })
  t.same(await claimableIds(db), [next!.id])
})

/** Key 'k': a dead-lettered head and two orders waiting behind it. */
async function deadHeadAndTwoBehind(db: Db): Promise<Order[]> {
  const line = await insertOrders(db, [
    makeOrder({ orderingKey: 'k', maxAttempts: 1 }),
    makeOrder({ orderingKey: 'k' }),
    makeOrder({ orderingKey: 'k' }),
  ])
  await settleNow(db, { failed: [line[0]!.id] })
  return line
}

t.test('skip lets the key go on and keeps the dead letter; a redrive puts it back in line by id', async (t) => {
  const db = await setUp(t)
  const [head, second, third] = await deadHeadAndTwoBehind(db)
  t.match(await skipOrder(db, second!.id), {
    outcome: 'conflict',
    reason: 'the order is waiting: only a failed order can be skipped',
  })
  const skipped = await skipOrder(db, head!.id)
  t.match(skipped, { outcome: 'skipped', order: { status: 'failed', skippedAt: Date }, due: { now: true } })
  t.match(await skipOrder(db, head!.id), { outcome: 'skipped' }, 'skipping again changes nothing')
  t.same(await claimableIds(db), [second!.id])
  t.same((await getBlockedKeys(db, { limit: 10 })).onFailed, 0)

  // Redriven while `second` runs: it waits, and goes before `third`, which was submitted after it.
  const { tx } = await claimBatch(db, { limit: 10 })
  t.same(await retryOrders(db, { ids: [head!.id], limit: 10 }), [head!.id])
  t.equal((await getOrder(db, head!.id))!.status, 'waiting')
  await tx.rollback()
  await settleNow(db, { completed: [second!.id] })
  t.same(await claimableIds(db), [head!.id])
  await settleNow(db, { completed: [head!.id] })
  t.same(await claimableIds(db), [third!.id])

  const [plain] = await insertOrders(db, [makeOrder({ maxAttempts: 1 })])
  await settleNow(db, { failed: [plain!.id] })
  t.match(await skipOrder(db, plain!.id), { outcome: 'conflict', reason: /no orderingKey/ })
  t.same(await skipOrder(db, 999_999), { outcome: 'not_found' })
})

t.test('cancel: a waiting order leaves the line; a cancelled head lets the next go', async (t) => {
  const db = await setUp(t)
  const [head, second, third] = await deadHeadAndTwoBehind(db)
  t.match(await cancelOrder(db, second!.id), { outcome: 'cancelled', due: { now: false } })
  t.same(await claimableIds(db), [], 'the dead letter still holds the key')
  t.match(await cancelOrder(db, head!.id), { outcome: 'cancelled', due: { now: true } })
  t.same(await claimableIds(db), [third!.id])
  t.same(await getBlockedKeys(db, { limit: 10 }), { count: 0, onFailed: 0, oldest: [] })
})

t.test('a delayed head holds back the due orders behind it until it has run', async (t) => {
  const db = await setUp(t)
  const [later] = await insertOrders(db, [makeOrder({ orderingKey: 'k', runAt: new Date(Date.now() + 60_000) })])
  const [due] = await insertOrders(db, [makeOrder({ orderingKey: 'k' })])
  t.same(await statuses(db, [later!.id, due!.id]), ['scheduled', 'waiting'])
  t.same(await claimableIds(db), [])
  await db.execute(sql`update orders set run_at = now() where id = ${later!.id}`)
  await promoteDueOrders(db, { limit: 10 })
  t.same(await claimableIds(db), [later!.id])
  await settleNow(db, { completed: [later!.id] })
  t.same(await claimableIds(db), [due!.id])

  // A delayed order promoted to head is scheduled, due at its own time.
  const [head, delayed] = await insertOrders(db, [
    makeOrder({ orderingKey: 'j' }),
    makeOrder({ orderingKey: 'j', runAt: new Date(Date.now() + 60_000) }),
  ])
  const { promoted } = await settleNow(db, { completed: [head!.id] })
  t.match(promoted, [{ id: delayed!.id, status: 'scheduled' }])
})

t.test('lease mode: a completed lease promotes the next order of its key; a failed one keeps it waiting', async (t) => {
  const db = await setUp(t)
  const [a1, a2, b1, b2] = await insertOrders(db, [
    makeOrder({ orderingKey: 'a' }),
    makeOrder({ orderingKey: 'a' }),
    makeOrder({ orderingKey: 'b', maxAttempts: 1 }),
    makeOrder({ orderingKey: 'b' }),
  ])
  const leased = await leaseOrders(db, { limit: 10, workerId: 'w', leaseMs: 30_000 })
  t.same(leased.map((l) => l.order.id).sort(), [a1!.id, b1!.id].sort())
  t.same(await leaseOrders(db, { limit: 10, workerId: 'w', leaseMs: 30_000 }), [], 'nothing else of either key')
  const [leaseA, leaseB] = [a1!.id, b1!.id].map((id) => leased.find((l) => l.order.id === id)!)
  const settled = await settleLeasedOrders(db, {
    succeeded: [leaseA!.lease],
    succeededKeys: keysOf([leaseA!.order]),
    failures: [{ ...leaseB!.lease, error: 'declined' }],
    workerId: 'w',
    policy: { baseMs: 0, maxMs: 0 },
  })
  t.match(settled, { completed: [a1!.id], failed: [{ id: b1!.id, status: 'failed' }], promoted: [{ id: a2!.id }] })
  t.same(await statuses(db, [a2!.id, b2!.id]), ['pending', 'waiting'])
})

/**
 * The two ways an order reaches a key's line: the api's insert, and submit_orders() in a
 * transaction of the caller's own. Each decides head or waiting for itself (the same rule, written
 * twice: in TypeScript's insert and in the SQL function), so each is raced the same way. Returns the
 * orders' ids.
 */
const submitters = {
  insertOrders: async (db: Db, orders: readonly NewOrder[]) => ids(await insertOrders(db, orders)),
  'submit_orders()': (db: Db, orders: readonly NewOrder[]) => db.$client.begin((tx) => submitOrders(tx, orders)),
}

for (const [via, submit] of Object.entries(submitters)) {
  t.test(
    `${via}: concurrent submissions to one key make exactly one head, and the rest wait in id order`,
    async (t) => {
      const db = await setUp(t)
      const submitted = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          submit(
            db,
            i % 4 === 0
              ? [makeOrder({ orderingKey: 'hot' }), makeOrder({ orderingKey: 'hot' })]
              : [makeOrder({ orderingKey: 'hot' })],
          ),
        ),
      )
      const all = (await listOrders(db, { orderingKey: 'hot', limit: 100 })).sort((a, b) => a.id - b.id)
      t.equal(all.length, 50)
      t.same(
        ids(all),
        submitted.flat().sort((a, b) => a - b),
      )
      const heads = all.filter((o) => o.status !== 'waiting')
      t.equal(heads.length, 1, 'one head')
      t.equal(heads[0]!.id, all[0]!.id, 'the oldest')
    },
  )

  t.test(
    `${via}: submissions racing the head settling never strand a key: every order of it runs, in order`,
    async (t) => {
      const db = await setUp(t)
      const total = 150
      const ran: number[] = []
      let submitting = true
      const submitter = (async () => {
        for (let i = 0; i < total; i++) await submit(db, [makeOrder({ orderingKey: 'race' })])
        submitting = false
      })()
      // A worker draining the key as fast as it can, while the line empties and refills under it.
      for (let idle = 0; submitting || idle < 3; ) {
        const [head, ...more] = await claimableIds(db)
        t.equal(more.length, 0)
        if (head === undefined) {
          idle += submitting ? 0 : 1
          await new Promise((resolve) => setImmediate(resolve))
          continue
        }
        ran.push(head)
        await settleNow(db, { completed: [head] })
      }
      await submitter
      const line = ids(await listOrders(db, { orderingKey: 'race', limit: 1000, order: 'asc' }))
      t.equal(line.length, total)
      t.same(ran, line, 'each once, in id order: none left waiting behind a head that is gone')
      t.equal((await countOrdersByStatus(db)).waiting, 0)
    },
  )
}

t.test("submit_order() with a key holds the key until the caller's transaction ends, and no other key", async (t) => {
  const db = await setUp(t)
  const [head] = await insertOrders(db, [makeOrder({ orderingKey: 'k' })])
  const { tx: claimed, orders } = await claimBatch(db, { limit: 10 })
  t.same(ids(orders), [head!.id], 'a worker holds the head')

  // The caller's transaction: its keyed submission, then whatever else it does before it commits.
  let callerOrder: number | undefined
  let commit = () => {}
  const callerCommits = new Promise<void>((resolve) => {
    commit = resolve
  })
  const caller = db.$client.begin(async (tx) => {
    callerOrder = await submitOrder(tx, makeOrder({ orderingKey: 'k' }))
    await callerCommits
  })
  await waitFor(() => callerOrder !== undefined, { message: "the caller's submission" })

  const finished: string[] = []
  const settling = settleBatch(claimed, {
    completed: [head!.id],
    completedKeys: ['k'],
    failures: [],
    workerId: 'w',
    policy: { baseMs: 0, maxMs: 0 },
  }).then((settlement) => {
    finished.push('settlement')
    return settlement
  })
  const laterSubmission = insertOrders(db, [makeOrder({ orderingKey: 'k' })]).then(([order]) => {
    finished.push('submission')
    return order!
  })
  const [otherKey] = await insertOrders(db, [makeOrder({ orderingKey: 'other' })])
  t.equal(otherKey!.status, 'pending', 'another key goes on at once')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(finished, [], "the head's settlement and a later submission to the key wait for the caller")
  t.equal((await getOrder(db, head!.id))!.status, 'pending', 'the head is not settled yet')

  commit()
  await caller
  const settlement = await settling
  const later = await laterSubmission
  t.same(
    settlement.promoted.map((p) => p.id),
    [callerOrder],
    "then the settlement promotes the caller's order: it was waiting, and is not stranded",
  )
  t.ok(later.id > callerOrder!, 'the later submission is behind it')
  t.same(await statuses(db, [head!.id, callerOrder!, later.id]), ['completed', 'pending', 'waiting'])
})

/** The constraint a statement broke, or 'none'. */
async function violated(query: Promise<unknown>): Promise<string> {
  try {
    await query
    return 'none'
  } catch (error) {
    return (error as { cause?: { constraint_name?: string } }).cause?.constraint_name ?? String(error)
  }
}

t.test('the head index makes a second head impossible, whatever writes the table', async (t) => {
  const db = await setUp(t)
  const [, second] = await insertOrders(db, [makeOrder({ orderingKey: 'k' }), makeOrder({ orderingKey: 'k' })])
  t.equal(
    await violated(db.execute(sql`update orders set status = 'pending' where id = ${second!.id}`)),
    'orders_key_head_idx',
  )
  t.equal(
    await violated(db.execute(sql`update orders set ordering_key = null where id = ${second!.id}`)),
    'orders_waiting_has_key',
  )
})

t.test('10,000 blocked keys cost the claim nothing: their orders are in no index it reads', async (t) => {
  const db = await setUp(t)
  await insertOrders(
    db,
    Array.from({ length: 100 }, () => makeOrder()),
  )
  const claimBuffers = async () => {
    await db.execute(sql`vacuum analyze orders`)
    const claim = claimStatement.bind(db, { limit: 50 })
    return db.transaction(async (tx) => {
      const [row] = await tx.execute(
        sql.raw(`explain (analyze, buffers, format json) ${claim.sql.replace('$1', '50')}`),
      )
      const { Plan: plan } = (row as { 'QUERY PLAN': [{ Plan: Record<string, number> }] })['QUERY PLAN'][0]
      t.equal(plan['Actual Rows'], 50)
      return (plan['Shared Hit Blocks'] ?? 0) + (plan['Shared Read Blocks'] ?? 0)
    })
  }
  const without = await claimBuffers()
  // Each key: a dead-lettered head at the highest priority and 9 orders waiting behind it.
  await db.execute(sql`
    insert into orders (customer_id, currency, items, total_cents, status, priority, ordering_key, attempts, max_attempts)
    select 'c', 'EUR', '[{"sku":"s","quantity":1,"unitPriceCents":1}]', 1,
      case when n = 1 then 'failed' else 'waiting' end, 1000, 'key-' || k, case when n = 1 then 5 else 0 end, 5
    from generate_series(1, 10000) k, generate_series(1, 10) n order by k, n`)
  t.match(await getBlockedKeys(db, { limit: 1 }), { count: 10_000, onFailed: 10_000 })
  const beside = await claimBuffers()
  t.comment(`claim of 50: ${without} buffers alone, ${beside} beside 10,000 blocked keys (100,000 orders)`)
  t.ok(beside <= without + 2, 'the blocked keys add no pages to the claim')
})

t.test('retention forgets the lock rows of keys with nothing in line, and keeps the others', async (t) => {
  const db = await setUp(t)
  const [done] = await insertOrders(db, [makeOrder({ orderingKey: 'done' })])
  await insertOrders(db, [makeOrder({ orderingKey: 'busy' }), makeOrder({ orderingKey: 'busy' })])
  await settleNow(db, { completed: [done!.id] })
  t.equal(await deleteIdleOrderingKeys(db, { batchSize: 10 }), 1)
  t.same(await db.execute(sql`select key from ordering_keys`), [{ key: 'busy' }])
  const [again] = await insertOrders(db, [makeOrder({ orderingKey: 'done' })])
  t.equal(again!.status, 'pending', 'a key forgotten is made again by its next submission')
})

t.test(
  'a promoted order joins the line when it is promoted: a backlog of keys does not hold newer orders back',
  async (t) => {
    const db = await setUp(t)
    const backlog = await insertOrders(
      db,
      Array.from({ length: 60 }, (_, i) => makeOrder({ orderingKey: `k-${i % 20}` })),
    )
    await new Promise((resolve) => setTimeout(resolve, 5))
    const [newer] = await insertOrders(db, [makeOrder()])
    const heads = await claimableIds(db)
    t.same(heads, [...ids(backlog.slice(0, 20)), newer!.id], 'the 20 heads and the newer order')
    await settleNow(db, { completed: heads.slice(0, 20) })
    const { tx, orders } = await claimBatch(db, { limit: 1 })
    await tx.rollback()
    t.same(ids(orders), [newer!.id], 'the newer order before the 20 heads promoted after it was submitted')
    const promoted = await getOrder(db, backlog[20]!.id)
    t.ok(promoted!.runAt > newer!.runAt, 'a promoted order is due from its promotion')
  },
)
