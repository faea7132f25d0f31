import { getOrder } from '@postgres-queue/db'
import { makeOrder, settleNow } from '@postgres-queue/testkit'
import t from 'tap'
import Value from 'typebox/value'
import { Order } from '../src/schemas/orders.js'
import { QueueStats } from '../src/schemas/queue.js'
import { startApi } from './helpers.js'

// orderingKey over HTTP: submitted, returned, listed, skipped, cancelled, and shown when it blocks.

const { app, db } = await startApi(t)

const post = (url: string, payload?: object) => app.inject({ method: 'POST', url, payload })

t.test('orders of one key: the first is due, the later ones wait; the key is returned and listed', async (t) => {
  const first = await post('/orders', makeOrder({ orderingKey: 'acct-1' }))
  t.equal(first.statusCode, 201)
  t.ok(Value.Check(Order, first.json()))
  t.match(first.json(), { orderingKey: 'acct-1', status: 'pending', skippedAt: null })
  const batch = await post('/orders/batch', {
    orders: [makeOrder({ orderingKey: 'acct-1' }), makeOrder({ orderingKey: 'acct-2' }), makeOrder()],
  })
  t.equal(batch.statusCode, 201)
  const [later, other, unkeyed] = batch.json().ids as number[]
  t.match(await getOrder(db, later!), { status: 'waiting', orderingKey: 'acct-1' })
  t.match(await getOrder(db, other!), { status: 'pending', orderingKey: 'acct-2' })
  t.match(await getOrder(db, unkeyed!), { status: 'pending', orderingKey: null })
  const listed = await app.inject({ url: '/orders?orderingKey=acct-1' })
  t.same(
    listed.json().orders.map((o: { id: number }) => o.id),
    [first.json().id, later],
  )
})

t.test('an orderingKey outside the rules is refused, and nothing is stored', async (t) => {
  for (const orderingKey of ['', 'k'.repeat(129), 'k\n1', 42]) {
    const response = await post('/orders', { ...makeOrder(), orderingKey })
    t.equal(response.statusCode, 400, JSON.stringify(orderingKey))
    t.match(response.json(), { code: 'VALIDATION_FAILED', message: /orderingKey/ })
  }
  t.equal((await app.inject({ url: '/orders?orderingKey=k%0A1' })).statusCode, 200, 'a filter is only text')
})

t.test('a dead letter blocks its key, shows in /queue/stats, and skip lets the key go on', async (t) => {
  const head = (await post('/orders', makeOrder({ orderingKey: 'acct-9', maxAttempts: 1 }))).json()
  const next = (await post('/orders', makeOrder({ orderingKey: 'acct-9' }))).json()
  t.equal(next.status, 'waiting')
  await settleNow(db, { failed: [head.id] })

  const stats = (await app.inject({ url: '/queue/stats' })).json()
  t.ok(Value.Check(QueueStats, stats))
  t.match(stats.blockedKeys, { onFailed: 1 })
  t.match(
    stats.blockedKeys.oldest.find((k: { key: string }) => k.key === 'acct-9'),
    { head: { id: head.id, status: 'failed' }, waiting: 1, waitingSince: String },
  )

  const notFailed = await post(`/orders/${next.id}/skip`)
  t.equal(notFailed.statusCode, 409)
  t.match(notFailed.json(), { code: 'ORDER_NOT_SKIPPABLE', message: /only a failed order can be skipped/ })
  t.equal((await post('/orders/999999999/skip')).statusCode, 404)

  const skipped = await post(`/orders/${head.id}/skip`)
  t.equal(skipped.statusCode, 200)
  t.match(skipped.json(), { id: head.id, status: 'failed', skippedAt: String })
  t.match(await getOrder(db, next.id), { status: 'pending' }, 'the next order of the key is due')
  t.match((await app.inject({ url: '/queue/stats' })).json().blockedKeys, { onFailed: 0 })
})

t.test('a waiting order can be cancelled; the key line goes on without it', async (t) => {
  const batch = await post('/orders/batch', { orders: [1, 2, 3].map(() => makeOrder({ orderingKey: 'acct-c' })) })
  const [head, waiting, last] = batch.json().ids as number[]
  const cancelled = await post(`/orders/${waiting}/cancel`)
  t.equal(cancelled.statusCode, 200)
  t.match(cancelled.json(), { status: 'cancelled' })
  await settleNow(db, { completed: [head!] })
  t.match(await getOrder(db, last!), { status: 'pending' })
})
