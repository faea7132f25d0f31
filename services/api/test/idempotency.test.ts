import { countOrdersByStatus, type Db, findIdempotencyKeys, sql } from '@postgres-queue/db'
import { makeOrder } from '@postgres-queue/testkit'
import t from 'tap'
import Value from 'typebox/value'
import { ErrorResponse } from '../src/schemas/errors.js'
import { Order } from '../src/schemas/orders.js'
import { startApi } from './helpers.js'

// 20 connections, so the concurrent duplicates below race in the database, not in the pool's queue.
const { app, db } = await startApi(t, { maxConnections: 20 })

let keys = 0
const newKey = () => `key-${process.pid}-${++keys}`

const submit = (key: string, body: unknown) =>
  app.inject({
    method: 'POST',
    url: '/orders',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  })

async function storedCount(db: Db): Promise<number> {
  return Object.values(await countOrdersByStatus(db)).reduce((sum, n) => sum + n, 0)
}

t.test('a repeat with the same key and body answers 200 with the original order and stores nothing', async (t) => {
  const key = newKey()
  const order = makeOrder()
  const first = await submit(key, order)
  t.equal(first.statusCode, 201)
  t.notOk(first.headers['idempotent-replayed'], 'the first answer is not a replay')
  const before = await storedCount(db)

  const repeat = await submit(key, order)

  t.equal(repeat.statusCode, 200)
  t.ok(Value.Check(Order, repeat.json()), 'the body is an Order')
  t.same(repeat.json(), first.json(), 'the original order, unchanged')
  t.equal(repeat.headers['idempotent-replayed'], 'true')
  t.equal(repeat.headers.location, first.headers.location)
  t.equal(await storedCount(db), before, 'nothing stored')
})

t.test('a repeat spelled differently is the same request: whitespace, key order, explicit defaults', async (t) => {
  const key = newKey()
  const first = await submit(key, {
    customerId: 'c-7',
    currency: 'EUR',
    items: [{ sku: 'A', quantity: 1, unitPriceCents: 100 }],
  })
  const respelled = `{ "items": [ { "unitPriceCents": 100, "quantity": 1, "sku": "A" } ],
    "maxAttempts": 5, "priority": 0, "currency": "EUR", "customerId": "c-7" }`

  const repeat = await submit(key, respelled)

  t.equal(repeat.statusCode, 200)
  t.equal(repeat.json().id, first.json().id)
})

t.test('the same key with another body answers 422 IDEMPOTENCY_KEY_REUSED and stores nothing', async (t) => {
  const key = newKey()
  const order = makeOrder()
  await submit(key, order)
  const before = await storedCount(db)

  for (const other of [
    { ...order, priority: 1 },
    { ...order, items: [...order.items].reverse() },
    { ...order, delaySeconds: 60 },
  ]) {
    const response = await submit(key, other)
    t.equal(response.statusCode, 422)
    t.notOk(response.headers.location, 'no Location: it would point at an order this body did not create')
    t.ok(Value.Check(ErrorResponse, response.json()), 'the body is an ErrorResponse')
    t.same(response.json(), {
      statusCode: 422,
      error: 'Unprocessable Entity',
      code: 'IDEMPOTENCY_KEY_REUSED',
      message: `Idempotency-Key ${key} was already used for a different request; use a new key for a new request`,
    })
  }
  t.equal(await storedCount(db), before, 'nothing stored')
})

t.test('different keys store different orders, even with the same body', async (t) => {
  const order = makeOrder()
  const a = await submit(newKey(), order)
  const b = await submit(newKey(), order)
  t.equal(a.statusCode, 201)
  t.equal(b.statusCode, 201)
  t.not(a.json().id, b.json().id)
})

t.test('a request without a key is never deduplicated', async (t) => {
  const order = makeOrder()
  const send = () => app.inject({ method: 'POST', url: '/orders', payload: order })
  const [a, b] = [await send(), await send()]
  t.equal(a.statusCode, 201)
  t.equal(b.statusCode, 201)
  t.not(a.json().id, b.json().id)
})

t.test('20 concurrent identical requests store one order: one 201 and nineteen 200s', async (t) => {
  const key = newKey()
  const order = makeOrder()
  const before = await storedCount(db)

  const responses = await Promise.all(Array.from({ length: 20 }, () => submit(key, order)))

  const statuses = responses.map((response) => response.statusCode)
  t.equal(statuses.filter((status) => status === 201).length, 1, 'one 201')
  t.equal(statuses.filter((status) => status === 200).length, 19, 'nineteen 200s')
  t.same(new Set(responses.map((response) => response.json().id)).size, 1, 'every answer is the same order')
  t.equal(await storedCount(db), before + 1, 'one row')
})

t.test('concurrent requests with one key and two bodies: one order, 422 for the body that lost', async (t) => {
  const key = newKey()
  const bodies = [makeOrder({ customerId: 'racer-a' }), makeOrder({ customerId: 'racer-b' })]
  const before = await storedCount(db)

  const sent = Array.from({ length: 10 }, (_, i) => bodies[i % 2]!)
  const responses = await Promise.all(sent.map((body) => submit(key, body)))

  t.equal(await storedCount(db), before + 1, 'one row')
  const winner = responses.find((response) => response.statusCode === 201)?.json()
  t.ok(winner, 'one request created the order')
  for (const [i, response] of responses.entries()) {
    const expected = sent[i]!.customerId === winner.customerId ? [200, 201] : [422]
    t.ok(expected.includes(response.statusCode), `${sent[i]!.customerId}: ${response.statusCode}`)
  }
})

t.test('a replay returns the order as it is now, not as it was', async (t) => {
  const key = newKey()
  const order = makeOrder()
  const { id } = (await submit(key, order)).json()
  await app.inject({ method: 'POST', url: `/orders/${id}/cancel` })

  const repeat = await submit(key, order)
  t.equal(repeat.statusCode, 200)
  t.equal(repeat.json().status, 'cancelled')
})

t.test('stores a key that looks like SQL verbatim, as a key like any other', async (t) => {
  const key = "1'OR'1'='1;--"
  const order = makeOrder()
  const first = await submit(key, order)
  t.equal(first.statusCode, 201)
  t.equal((await submit(key, order)).statusCode, 200)
  t.same((await findIdempotencyKeys(db, [key])).get(key)?.orderIds, [first.json().id])
})

const submitBatch = (key: string, orders: unknown[]) =>
  app.inject({ method: 'POST', url: '/orders/batch', headers: { 'idempotency-key': key }, payload: { orders } })

t.test('a batch with a key is stored once: a repeat answers 200 with the same ids, another body 422', async (t) => {
  const key = newKey()
  const orders = [makeOrder(), makeOrder(), makeOrder()]
  const first = await submitBatch(key, orders)
  t.equal(first.statusCode, 201)
  const before = await storedCount(db)
  const repeat = await submitBatch(key, orders)
  t.equal(repeat.statusCode, 200)
  t.same(repeat.json(), first.json(), 'the ids stored by the first request')
  t.equal(repeat.headers['idempotent-replayed'], 'true')
  const other = await submitBatch(key, [makeOrder()])
  t.equal(other.statusCode, 422)
  t.equal(other.json().code, 'IDEMPOTENCY_KEY_REUSED')
  t.equal(await storedCount(db), before, 'nothing stored by the repeats')
})

t.test('a key outlives its order: once retention deleted it, a repeat answers 410 and stores nothing', async (t) => {
  const key = newKey()
  const order = makeOrder()
  const first = await submit(key, order)
  await db.execute(sql`delete from orders where id = ${first.json().id}`)
  const before = await storedCount(db)
  const repeat = await submit(key, order)
  t.equal(repeat.statusCode, 410)
  t.equal(repeat.json().code, 'ORDER_DELETED')
  t.match(repeat.json().message, new RegExp(`stored order ${first.json().id}`))
  t.equal(await storedCount(db), before, 'not stored again')
  t.same((await findIdempotencyKeys(db, [key])).get(key)?.orderIds, [first.json().id])
})
