import { claimBatch, getOrder } from '@postgres-queue/db'
import { makeOrder } from '@postgres-queue/testkit'
import t from 'tap'
import { startApi } from './helpers.js'

const { app, db } = await startApi(t)

const submit = (payload: object) => app.inject({ method: 'POST', url: '/orders', payload })

t.test('stores runAt as the instant given, answered in UTC', async (t) => {
  const response = await submit({ ...makeOrder(), runAt: '2030-01-02T05:04:05.678+02:00' })
  t.equal(response.statusCode, 201)
  t.equal(response.json().runAt, '2030-01-02T03:04:05.678Z')
  t.equal((await getOrder(db, response.json().id))?.runAt.toISOString(), '2030-01-02T03:04:05.678Z')
})

t.test('delaySeconds makes the order due that long after the request', async (t) => {
  const before = Date.now()
  const response = await submit({ ...makeOrder(), delaySeconds: 3600 })
  const after = Date.now()
  t.equal(response.statusCode, 201)
  const runAt = Date.parse(response.json().runAt)
  t.ok(runAt >= before + 3_600_000 && runAt <= after + 3_600_000, 'due in an hour')
})

t.test('without runAt or delaySeconds the order is due at once', async (t) => {
  const response = await submit(makeOrder())
  t.ok(Date.parse(response.json().runAt) <= Date.now())
})

t.test('a delayed order is not claimed before it is due', async (t) => {
  const late = (await submit({ ...makeOrder(), delaySeconds: 60 })).json().id
  const due = (await submit({ ...makeOrder(), runAt: '2000-01-01T00:00:00Z' })).json().id
  const { tx, orders } = await claimBatch(db, { limit: 1000 })
  await tx.rollback()
  const claimed = orders.map((o) => o.id)
  t.ok(claimed.includes(due), 'a runAt in the past is due now')
  t.notOk(claimed.includes(late), 'the delayed order waits')
})

t.test('maxAttempts defaults to 5 and keeps the value given', async (t) => {
  t.equal((await submit(makeOrder())).json().maxAttempts, 5)
  for (const maxAttempts of [1, 100]) {
    const response = await submit(makeOrder({ maxAttempts }))
    t.equal(response.statusCode, 201)
    t.equal((await getOrder(db, response.json().id))?.maxAttempts, maxAttempts)
  }
})

t.test('accepts the bounds: a delay of a year, priorities -1000 and 1000', async (t) => {
  t.equal((await submit({ ...makeOrder(), delaySeconds: 31_536_000 })).statusCode, 201)
  t.equal((await submit({ ...makeOrder(), delaySeconds: 0 })).statusCode, 201)
  t.equal((await submit(makeOrder({ priority: -1000 }))).statusCode, 201)
  t.equal((await submit(makeOrder({ priority: 1000 }))).statusCode, 201)
})

t.test('a batch takes the options per order', async (t) => {
  const orders = [
    { ...makeOrder(), runAt: '2031-06-01T00:00:00Z', maxAttempts: 2, priority: 9 },
    { ...makeOrder(), delaySeconds: 120 },
    makeOrder(),
  ]
  const response = await app.inject({ method: 'POST', url: '/orders/batch', payload: { orders } })
  t.equal(response.statusCode, 201)
  const [first, second, third] = await Promise.all(response.json().ids.map((id: number) => getOrder(db, id)))
  t.match(first, { maxAttempts: 2, priority: 9 })
  t.equal(first?.runAt.toISOString(), '2031-06-01T00:00:00.000Z')
  t.ok(second!.runAt.getTime() > Date.now() + 100_000, 'the second waits two minutes')
  t.match(third, { maxAttempts: 5, priority: 0 })
})
