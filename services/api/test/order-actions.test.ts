import { claimBatch, getOrder, insertOrders, listenForOrders } from '@postgres-queue/db'
import { makeOrder, settleNow, waitFor } from '@postgres-queue/testkit'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import Value from 'typebox/value'
import { ErrorResponse } from '../src/schemas/errors.js'
import { Order } from '../src/schemas/orders.js'
import { insertFailedOrders, startApi } from './helpers.js'

const { app, db } = await startApi(t)

const post = (url: string, extra: Omit<InjectOptions, 'method' | 'url'> = {}) =>
  app.inject({ method: 'POST', url, ...extra })

async function insertPending(): Promise<number> {
  const [order] = await insertOrders(db, [makeOrder()])
  return order!.id
}

t.test('retrying a failed order sends it back to pending, due now, with its attempts reset', async (t) => {
  const [id] = await insertFailedOrders(db)
  const response = await post(`/orders/${id}/retry`)

  t.equal(response.statusCode, 200)
  const order = response.json()
  t.ok(Value.Check(Order, order), 'the body is an Order')
  t.match(order, { id, status: 'pending', attempts: 0, lastError: 'processor threw: card declined' })
  t.ok(Date.parse(order.runAt) <= Date.now(), 'due at once')
  t.match(await getOrder(db, id!), { status: 'pending', attempts: 0 })
})

const emptyBodies: [name: string, extra: Omit<InjectOptions, 'method' | 'url'>][] = [
  ['no body and no content type', {}],
  ['an empty body typed application/json', { headers: { 'content-type': 'application/json' }, payload: '' }],
  ['an empty object', { payload: {} }],
]
for (const [name, extra] of emptyBodies) {
  t.test(`the single-order actions accept ${name}`, async (t) => {
    const [failed] = await insertFailedOrders(db)
    t.equal((await post(`/orders/${failed}/retry`, extra)).statusCode, 200, 'retry')
    t.equal((await post(`/orders/${await insertPending()}/cancel`, extra)).statusCode, 200, 'cancel')
  })
}

t.test('retrying an order nobody has answers 404 ORDER_NOT_FOUND', async (t) => {
  const response = await post('/orders/999999/retry')
  t.equal(response.statusCode, 404)
  t.same(response.json(), {
    statusCode: 404,
    error: 'Not Found',
    code: 'ORDER_NOT_FOUND',
    message: 'Order 999999 does not exist',
  })
})

t.test('retrying an order that has not failed answers 409 ORDER_NOT_FAILED with its status', async (t) => {
  const pending = await insertPending()
  const completed = await insertPending()
  await settleNow(db, { completed: [completed], workerId: 'worker-test' })

  for (const [id, status] of [
    [pending, 'pending'],
    [completed, 'completed'],
  ] as const) {
    const response = await post(`/orders/${id}/retry`)
    t.equal(response.statusCode, 409, status)
    t.ok(Value.Check(ErrorResponse, response.json()))
    t.match(response.json(), {
      code: 'ORDER_NOT_FAILED',
      message: `Order ${id} is ${status}; only a failed order can be retried`,
    })
    t.equal((await getOrder(db, id))?.status, status, 'the order is left as it was')
  }
})

t.test('a bulk retry sends back only the failed orders among the ids given', async (t) => {
  const failed = await insertFailedOrders(db, 3)
  const pending = await insertPending()
  const response = await post('/orders/retry', { payload: { ids: [failed[0], pending, failed[2], 999999] } })

  t.equal(response.statusCode, 200)
  t.same(response.json(), { retried: 2, ids: [failed[0], failed[2]] })
  t.equal((await getOrder(db, failed[1]!))?.status, 'failed', 'an order not named stays failed')
  t.equal((await getOrder(db, pending))?.status, 'pending')
})

t.test('a bulk retry without ids sends back every failed order, oldest first, up to its limit', async (t) => {
  // Whatever earlier tests left failed comes first: drain it, so this test counts only its own.
  await post('/orders/retry', { payload: {} })
  const failed = await insertFailedOrders(db, 5)

  t.same((await post('/orders/retry', { payload: { limit: 2 } })).json(), { retried: 2, ids: failed.slice(0, 2) })
  t.same((await post('/orders/retry', { payload: {} })).json(), { retried: 3, ids: failed.slice(2) })
  t.same((await post('/orders/retry', { payload: {} })).json(), { retried: 0, ids: [] }, 'none left')
})

t.test('a bulk retry needs a body: redriving everything takes an explicit {}', async (t) => {
  const [id] = await insertFailedOrders(db)
  const bare = await post('/orders/retry')
  t.equal(bare.statusCode, 400)
  t.match(bare.json(), { code: 'VALIDATION_FAILED', message: 'body must be object' })
  const empty = await post('/orders/retry', { headers: { 'content-type': 'application/json' }, payload: '' })
  t.equal(empty.statusCode, 400)
  t.match(empty.json(), { code: 'EMPTY_BODY' })
  t.equal((await getOrder(db, id!))?.status, 'failed')
})

t.test('a retry wakes the listening workers, so they need not wait for their next poll', async (t) => {
  const failed = await insertFailedOrders(db, 2)
  let wakes = 0
  const subscription = await listenForOrders(db, () => wakes++)
  t.teardown(() => subscription.unsubscribe())

  for (const request of [() => post(`/orders/${failed[0]}/retry`), () => post('/orders/retry', { payload: {} })]) {
    const before = wakes
    t.equal((await request()).statusCode, 200)
    await waitFor(() => wakes > before, { message: 'a wake-up after the retry' })
    t.ok(wakes > before, 'the workers were woken')
  }
})

t.test('cancelling a pending order answers 200 with it cancelled', async (t) => {
  const id = await insertPending()
  const response = await post(`/orders/${id}/cancel`)

  t.equal(response.statusCode, 200)
  t.ok(Value.Check(Order, response.json()), 'the body is an Order')
  t.match(response.json(), { id, status: 'cancelled' })
  t.equal((await getOrder(db, id))?.status, 'cancelled')
})

t.test('cancelling an order that is not pending answers 409 ORDER_NOT_CANCELLABLE with the reason', async (t) => {
  const id = await insertPending()
  await post(`/orders/${id}/cancel`)
  const response = await post(`/orders/${id}/cancel`)

  t.equal(response.statusCode, 409)
  t.same(response.json(), {
    statusCode: 409,
    error: 'Conflict',
    code: 'ORDER_NOT_CANCELLABLE',
    message: `Order ${id} cannot be cancelled: the order is cancelled; only scheduled, waiting, pending or failed orders can be`,
  })
})

t.test('cancelling an order a worker holds answers 409 at once, without waiting for the worker', async (t) => {
  const id = await insertPending()
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let claimed!: () => void
  const held = new Promise<void>((resolve) => (claimed = resolve))
  // A transaction-mode worker: the claim's row locks last until the batch commits.
  const worker = claimBatch(db, { limit: 1000 }).then(async ({ tx, orders }) => {
    if (!orders.some((row) => row.id === id)) throw new Error('the order was not claimed')
    claimed()
    await released
    await tx.rollback()
  })
  t.teardown(() => {
    release()
    return worker
  })
  await held

  const started = performance.now()
  const response = await post(`/orders/${id}/cancel`)
  t.ok(performance.now() - started < 1000, 'answered without waiting for the lock')
  t.equal(response.statusCode, 409)
  t.equal(response.json().message, `Order ${id} cannot be cancelled: the order is being processed`)
  release()
  await worker
  t.equal((await getOrder(db, id))?.status, 'pending', 'the worker still has it to process')
})

t.test('the single-order actions refuse a body with fields', async (t) => {
  const id = await insertPending()
  for (const action of ['retry', 'cancel']) {
    const response = await post(`/orders/${id}/${action}`, { payload: { reason: 'customer asked' } })
    t.equal(response.statusCode, 400, action)
    t.match(response.json(), { code: 'VALIDATION_FAILED' })
  }
  t.equal((await getOrder(db, id))?.status, 'pending')
})
