import { insertOrders, orderStatuses } from '@postgres-queue/db'
import { makeOrder, settleNow } from '@postgres-queue/testkit'
import t from 'tap'
import Value from 'typebox/value'
import { ErrorResponse } from '../src/schemas/errors.js'
import { Order, OrderPage } from '../src/schemas/orders.js'
import { startApi } from './helpers.js'

const { app, db } = await startApi(t)

// 7 orders, 3 of them completed: ids interleave the two statuses.
const inserted = await insertOrders(
  db,
  Array.from({ length: 7 }, (_, i) => makeOrder({ priority: i })),
)
const completedIds = [inserted[1]!.id, inserted[4]!.id, inserted[5]!.id]
await settleNow(db, { completed: completedIds, workerId: 'worker-test' })
const allIds = inserted.map((order) => order.id)
const pendingIds = allIds.filter((id) => !completedIds.includes(id))

async function listIds(query: string): Promise<{ ids: number[]; nextCursor: number | null }> {
  const response = await app.inject({ method: 'GET', url: `/orders${query}` })
  if (response.statusCode !== 200) throw new Error(`GET /orders${query}: ${response.statusCode} ${response.body}`)
  const page = response.json()
  if (!Value.Check(OrderPage, page)) throw new Error(`GET /orders${query}: not an OrderPage`)
  return { ids: page.orders.map((order) => order.id), nextCursor: page.nextCursor }
}

/** Follows nextCursor until the last page, as a client would. */
async function listAllIds(query: string, limit: number): Promise<{ ids: number[]; pages: number }> {
  const ids: number[] = []
  let pages = 0
  for (let after: number | null = 0; after !== null; pages++) {
    const page = await listIds(`?${query}&limit=${limit}&after=${after}`)
    ids.push(...page.ids)
    after = page.nextCursor
  }
  return { ids, pages }
}

t.test('returns an order by id, with its timestamps as ISO strings and no internal columns', async (t) => {
  // The lease holder and its token, and the trace context, are the server's business.
  const { lockedBy: _holder, leaseToken: _token, traceparent: _trace, ...stored } = inserted[0]!
  const response = await app.inject({ method: 'GET', url: `/orders/${stored.id}` })
  t.equal(response.statusCode, 200)
  const order = response.json()
  t.ok(Value.Check(Order, order), 'the body is an Order')
  t.same(order, {
    ...stored,
    runAt: stored.runAt.toISOString(),
    createdAt: stored.createdAt.toISOString(),
    updatedAt: stored.updatedAt.toISOString(),
    completedAt: null,
  })
})

t.test('returns a completed order with who completed it and when', async (t) => {
  const response = await app.inject({ method: 'GET', url: `/orders/${completedIds[0]}` })
  t.match(response.json(), {
    status: 'completed',
    attempts: 1,
    completedBy: 'worker-test',
    completedAt: /^\d{4}-\d\d-\d\dT/,
  })
})

t.test('answers 404 ORDER_NOT_FOUND for an id nobody has', async (t) => {
  const response = await app.inject({ method: 'GET', url: '/orders/999999' })
  t.equal(response.statusCode, 404)
  t.same(response.json(), {
    statusCode: 404,
    error: 'Not Found',
    code: 'ORDER_NOT_FOUND',
    message: 'Order 999999 does not exist',
  })
})

for (const id of ['abc', '0', '-1', '1.5', '1e3', '0x10', '007', '9007199254740992', '99999999999999999999']) {
  t.test(`answers 400 for the malformed id ${id}`, async (t) => {
    const response = await app.inject({ method: 'GET', url: `/orders/${id}` })
    t.equal(response.statusCode, 400)
    t.ok(Value.Check(ErrorResponse, response.json()), 'the body is an ErrorResponse')
    t.match(response.json(), { code: 'VALIDATION_FAILED', details: [{ path: '/id' }] })
  })
}

t.test('accepts the largest safe integer as an id', async (t) => {
  const response = await app.inject({ method: 'GET', url: `/orders/${Number.MAX_SAFE_INTEGER}` })
  t.equal(response.statusCode, 404)
})

t.test('lists orders in id order, 50 to a page by default', async (t) => {
  t.same(await listIds(''), { ids: allIds, nextCursor: null })
})

t.test('lists only the orders of the status asked for', async (t) => {
  t.same((await listIds('?status=completed')).ids, completedIds)
  t.same((await listIds('?status=pending')).ids, pendingIds)
  t.same((await listIds('?status=failed')).ids, [])
})

t.test('pages through every order exactly once', async (t) => {
  for (const limit of [1, 2, 3, 7, 8]) {
    const { ids, pages } = await listAllIds('', limit)
    t.same(ids, allIds, `limit ${limit}: no duplicates, no gaps`)
    t.equal(pages, Math.floor(allIds.length / limit) + 1, `limit ${limit}: pages`)
  }
})

t.test('pages through one status exactly once', async (t) => {
  t.same((await listAllIds('status=pending', 2)).ids, pendingIds)
  t.same((await listAllIds('status=completed', 2)).ids, completedIds)
})

t.test('sets nextCursor to the last id of a full page, null on a short one', async (t) => {
  t.same(await listIds('?limit=3'), { ids: allIds.slice(0, 3), nextCursor: allIds[2] })
  t.same(await listIds(`?limit=3&after=${allIds[5]}`), { ids: allIds.slice(6), nextCursor: null })
})

t.test('lists newest first with order=desc, each page below the last cursor', async (t) => {
  const ids: number[] = []
  let page = await listIds('?order=desc&limit=3')
  ids.push(...page.ids)
  while (page.nextCursor !== null) {
    page = await listIds(`?order=desc&limit=3&after=${page.nextCursor}`)
    ids.push(...page.ids)
  }
  t.same(ids, [...allIds].reverse(), 'every order once, newest first')
  t.same((await listIds('?order=desc&status=completed')).ids, [...completedIds].reverse(), 'of one status')
  t.same((await listIds('?order=asc&limit=2')).ids, allIds.slice(0, 2), 'asc is the default order')
})

for (const query of [
  'order=DESC',
  'order=newest',
  'status=done',
  'status=PENDING',
  'limit=0',
  'limit=501',
  'limit=2.5',
  'limit=ten',
  'after=-1',
  'after=1e3',
  'after=99999999999999999999',
  'sort=id',
]) {
  t.test(`answers 400 for the query ${query}`, async (t) => {
    const response = await app.inject({ method: 'GET', url: `/orders?${query}` })
    t.equal(response.statusCode, 400)
    t.match(response.json(), { code: 'VALIDATION_FAILED', message: /^querystring/ })
  })
}

t.test('accepts every order status as a filter', async (t) => {
  for (const status of orderStatuses) {
    const response = await app.inject({ method: 'GET', url: `/orders?status=${status}` })
    t.equal(response.statusCode, 200, status)
  }
})
