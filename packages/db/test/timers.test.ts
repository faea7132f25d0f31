import { makeOrder, openTestDb } from '@postgres-queue/testkit'
import t, { type Test } from 'tap'
import { claimBatch, getOrder, insertOrders, nextDueAt, promoteDueOrders, sql } from '../src/index.js'

const setUp = (t: Test) => openTestDb(t, { maxConnections: 6 })

t.test('scheduled orders become pending when due, keeping when they became due; later ones wait', async (t) => {
  const db = await setUp(t)
  const soon = new Date(Date.now() + 60_000)
  const [due, later] = await insertOrders(db, [
    makeOrder({ runAt: soon }),
    makeOrder({ runAt: new Date(Date.now() + 3_600_000) }),
  ])
  t.match(await promoteDueOrders(db, { limit: 10 }), { promoted: 0 }, 'nothing due yet')
  t.same((await nextDueAt(db)).dueAt, soon, 'the next thing to come due')
  await db.execute(sql`update orders set run_at = now() - interval '2 seconds' where id = ${due!.id}`)
  t.match(await promoteDueOrders(db, { limit: 10 }), { promoted: 1, rescued: [], deadLettered: [] })
  const promoted = await getOrder(db, due!.id)
  t.equal(promoted!.status, 'pending')
  t.ok(Date.now() - promoted!.runAt.getTime() >= 2000, 'its wait counts from when it came due')
  t.equal((await getOrder(db, later!.id))!.status, 'scheduled')
  t.same(
    (
      await claimBatch(db, { limit: 10 }).then(async ({ tx, orders }) => {
        await tx.rollback()
        return orders
      })
    ).map((o) => o.id),
    [due!.id],
  )
})

t.test('concurrent promotions take disjoint orders, and a large backlog goes a batch at a time', async (t) => {
  const db = await setUp(t)
  await db.execute(sql`
    insert into orders (customer_id, currency, items, total_cents, status, run_at)
    select 'c', 'EUR', '[{"sku":"s","quantity":1,"unitPriceCents":1}]', 1, 'scheduled', now() - interval '1 second'
    from generate_series(1, 2500)`)
  const results = await Promise.all(Array.from({ length: 4 }, () => promoteDueOrders(db, { limit: 400 })))
  const first = results.reduce((sum, r) => sum + r.promoted, 0)
  t.ok(
    results.every((r) => r.promoted <= 400),
    'each within its limit',
  )
  let total = first
  for (
    let r = await promoteDueOrders(db, { limit: 400 });
    r.promoted > 0;
    r = await promoteDueOrders(db, { limit: 400 })
  ) {
    total += r.promoted
  }
  t.equal(total, 2500, 'every due order promoted exactly once')
  const [row] = await db.execute<{ n: number }>(sql`select count(*)::int as n from orders where status = 'pending'`)
  t.equal(row!.n, 2500)
  t.equal((await nextDueAt(db)).dueAt, undefined, 'nothing left to come due')
})

t.test('nextDueAt names a due order a promotion passed over, so its timer comes back for it', async (t) => {
  const db = await setUp(t)
  const [order] = await insertOrders(db, [makeOrder({ runAt: new Date(Date.now() + 60_000) })])
  const [due] = await db.execute<{ run_at: string }>(
    sql`update orders set run_at = now() - interval '1 second' where id = ${order!.id} returning run_at`,
  )
  await db.transaction(async (tx) => {
    await tx.execute(sql`select id from orders where id = ${order!.id} for update`)
    t.match(await promoteDueOrders(db, { limit: 10 }), { promoted: 0 }, 'held by another transaction: skipped')
    t.same((await nextDueAt(db)).dueAt, new Date(due!.run_at), 'and still named, due already')
  })
  t.match(await promoteDueOrders(db, { limit: 10 }), { promoted: 1 }, 'promoted once free')
  t.equal((await nextDueAt(db)).dueAt, undefined)
})
