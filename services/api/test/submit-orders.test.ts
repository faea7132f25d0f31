import { getOrder } from '@postgres-queue/db'
import { makeOrder } from '@postgres-queue/testkit'
import t from 'tap'
import Value from 'typebox/value'
import { Order } from '../src/schemas/orders.js'
import { startApi } from './helpers.js'

const { app, db } = await startApi(t)

t.test('stores a submitted order and answers 201 with it and its Location', async (t) => {
  const submitted = {
    customerId: 'c-42',
    currency: 'EUR',
    items: [
      { sku: 'SKU-1', quantity: 2, unitPriceCents: 1250 },
      { sku: 'SKU-2', quantity: 3, unitPriceCents: 499 },
    ],
    priority: 7,
  }
  const response = await app.inject({ method: 'POST', url: '/orders', payload: submitted })

  t.equal(response.statusCode, 201)
  const order = response.json()
  t.ok(Value.Check(Order, order), 'the body is an Order')
  t.equal(response.headers.location, `/orders/${order.id}`)
  t.match(order, { ...submitted, totalCents: 2 * 1250 + 3 * 499, status: 'pending', attempts: 0, lastError: null })

  const stored = await getOrder(db, order.id)
  t.match(stored, { customerId: 'c-42', currency: 'EUR', priority: 7, totalCents: 3997, status: 'pending' })
  t.same(stored?.items, submitted.items)
  t.equal(stored?.createdAt.toISOString(), order.createdAt)
})

t.test('defaults the priority to 0', async (t) => {
  const response = await app.inject({ method: 'POST', url: '/orders', payload: makeOrder() })
  t.equal(response.statusCode, 201)
  t.equal(response.json().priority, 0)
})

t.test('computes the total itself: a client-sent total is an unknown field', async (t) => {
  const response = await app.inject({ method: 'POST', url: '/orders', payload: { ...makeOrder(), totalCents: 1 } })
  t.equal(response.statusCode, 400)
})

t.test('accepts a body typed application/json with a charset', async (t) => {
  const response = await app.inject({
    method: 'POST',
    url: '/orders',
    headers: { 'content-type': 'application/json; charset=utf-8' },
    payload: JSON.stringify(makeOrder()),
  })
  t.equal(response.statusCode, 201)
})

t.test('stores the largest order exactly: 100 items at the highest quantity and price', async (t) => {
  const items = Array.from({ length: 100 }, (_, i) => ({
    sku: `SKU-${i}`,
    quantity: 10_000,
    unitPriceCents: 1_000_000_000,
  }))
  const response = await app.inject({ method: 'POST', url: '/orders', payload: makeOrder({ items }) })
  t.equal(response.statusCode, 201)
  t.equal(response.json().totalCents, 10 ** 15)
  t.equal((await getOrder(db, response.json().id))?.totalCents, 10 ** 15)
})

t.test('keeps unicode identifiers intact', async (t) => {
  const customerId = 'Zoë 客户 🧾'
  const response = await app.inject({ method: 'POST', url: '/orders', payload: makeOrder({ customerId }) })
  t.equal(response.statusCode, 201)
  t.equal((await getOrder(db, response.json().id))?.customerId, customerId)
})

t.test('stores a batch in one go and answers with the ids in submission order', async (t) => {
  const orders = [
    makeOrder({ customerId: 'batch-a', priority: 5 }),
    makeOrder({ customerId: 'batch-b', currency: 'USD' }),
    makeOrder({ customerId: 'batch-c', items: [{ sku: 'ONE', quantity: 1, unitPriceCents: 0 }] }),
  ]
  const response = await app.inject({ method: 'POST', url: '/orders/batch', payload: { orders } })

  t.equal(response.statusCode, 201)
  const { ids } = response.json<{ ids: number[] }>()
  t.equal(ids.length, 3)
  t.same(
    [...ids].sort((a, b) => a - b),
    ids,
    'ids ascend in submission order',
  )
  for (const [i, id] of ids.entries()) {
    const submitted = orders[i]!
    t.match(await getOrder(db, id), { ...submitted, status: 'pending' }, submitted.customerId)
  }
  t.equal((await getOrder(db, ids[2]!))?.totalCents, 0)
})

t.test('stores a batch of the maximum 1000 orders, well over 1 MiB of JSON', async (t) => {
  const items = Array.from({ length: 25 }, (_, i) => ({ sku: `SKU-${i}`, quantity: 1, unitPriceCents: 100 }))
  const orders = Array.from({ length: 1000 }, () => makeOrder({ items }))
  const payload = JSON.stringify({ orders })
  t.ok(payload.length > 1024 * 1024)
  const response = await app.inject({
    method: 'POST',
    url: '/orders/batch',
    headers: { 'content-type': 'application/json' },
    payload,
  })
  t.equal(response.statusCode, 201)
  const { ids } = response.json<{ ids: number[] }>()
  t.equal(ids.length, 1000)
  t.equal((await getOrder(db, ids[0]!))?.customerId, orders[0]?.customerId)
  t.equal((await getOrder(db, ids.at(-1)!))?.customerId, orders.at(-1)?.customerId)
})
