import { countOrdersByStatus, getOrder, insertOrders, sql } from '@postgres-queue/db'
import { makeOrder } from '@postgres-queue/testkit'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import Value from 'typebox/value'
import { ErrorResponse } from '../src/schemas/errors.js'
import { insertFailedOrders, startApi } from './helpers.js'

// Every rejection below must leave the table as it was: no order stored, none retried or cancelled.
// One failed and one pending order are there for the actions to be refused on.
const { app, db } = await startApi(t)
const [failedId] = await insertFailedOrders(db)
const [pending] = await insertOrders(db, [makeOrder()])
const pendingId = pending!.id

const valid = () => makeOrder({ items: [{ sku: 'SKU-1', quantity: 2, unitPriceCents: 1250 }] })
const validItem = { sku: 'SKU-1', quantity: 2, unitPriceCents: 1250 }

interface Rejection {
  name: string
  request: InjectOptions
  status: number
  code: string
  /** The JSON pointer the first detail names, for validation errors. */
  path?: string
}

const post = (url: string, payload: unknown): InjectOptions => ({ method: 'POST', url, payload: payload as object })
const postOrder = (payload: unknown) => post('/orders', payload)
const postBatch = (payload: unknown) => post('/orders/batch', payload)
const postRaw = (url: string, contentType: string, payload: string): InjectOptions => ({
  method: 'POST',
  url,
  headers: { 'content-type': contentType },
  payload,
})
const postWithKey = (key: string): InjectOptions => ({
  method: 'POST',
  url: '/orders',
  headers: { 'idempotency-key': key },
  payload: valid(),
})
const nested = (depth: number, open: string, leaf: string, close: string) =>
  open.repeat(depth) + leaf + close.repeat(depth)

const invalidOrders: [name: string, body: unknown, path: string][] = [
  ['an unknown top-level field', { ...valid(), colour: 'red' }, '/colour'],
  ['an unknown field in an item', { ...valid(), items: [{ ...validItem, colour: 'red' }] }, '/items/0/colour'],
  ['a missing customerId', { currency: 'EUR', items: [validItem] }, '/customerId'],
  ['a numeric customerId', { ...valid(), customerId: 42 }, '/customerId'],
  ['an empty customerId', { ...valid(), customerId: '' }, '/customerId'],
  ['a 129-character customerId', { ...valid(), customerId: 'c'.repeat(129) }, '/customerId'],
  ['a NUL in the customerId', { ...valid(), customerId: 'c-\u000042' }, '/customerId'],
  ['an escape sequence in the customerId', { ...valid(), customerId: '\u001b[31mc-42' }, '/customerId'],
  ['a newline in the customerId', { ...valid(), customerId: 'c-42\n' }, '/customerId'],
  ['a C1 control character in the customerId', { ...valid(), customerId: 'c-\u009b42' }, '/customerId'],
  ['a NUL in a sku', { ...valid(), items: [{ ...validItem, sku: 'SKU\u0000' }] }, '/items/0/sku'],
  ['an unpaired surrogate in a sku', { ...valid(), items: [{ ...validItem, sku: 'SKU-\ud800' }] }, '/items/0/sku'],
  ['a 65-character sku', { ...valid(), items: [{ ...validItem, sku: 's'.repeat(65) }] }, '/items/0/sku'],
  ['a quantity as a string', { ...valid(), items: [{ ...validItem, quantity: '2' }] }, '/items/0/quantity'],
  ['a price as a string', { ...valid(), items: [{ ...validItem, unitPriceCents: '1250' }] }, '/items/0/unitPriceCents'],
  ['a priority as a string', { ...valid(), priority: '1' }, '/priority'],
  ['a zero quantity', { ...valid(), items: [{ ...validItem, quantity: 0 }] }, '/items/0/quantity'],
  ['a negative quantity', { ...valid(), items: [{ ...validItem, quantity: -1 }] }, '/items/0/quantity'],
  ['a quantity over 10000', { ...valid(), items: [{ ...validItem, quantity: 10_001 }] }, '/items/0/quantity'],
  ['a fractional price', { ...valid(), items: [{ ...validItem, unitPriceCents: 12.5 }] }, '/items/0/unitPriceCents'],
  ['a negative price', { ...valid(), items: [{ ...validItem, unitPriceCents: -1 }] }, '/items/0/unitPriceCents'],
  ['a huge price', { ...valid(), items: [{ ...validItem, unitPriceCents: 1e12 }] }, '/items/0/unitPriceCents'],
  ['no items', { ...valid(), items: [] }, '/items'],
  ['101 items', { ...valid(), items: Array.from({ length: 101 }, () => validItem) }, '/items'],
  ['items that are not a list', { ...valid(), items: validItem }, '/items'],
  ['a made-up currency', { ...valid(), currency: 'ABC' }, '/currency'],
  ['a lower-case currency', { ...valid(), currency: 'eur' }, '/currency'],
  ['a currency name', { ...valid(), currency: 'EURO' }, '/currency'],
  ['a priority over 1000', { ...valid(), priority: 1001 }, '/priority'],
  ['a fractional priority', { ...valid(), priority: 0.5 }, '/priority'],
  ['a list instead of an order', [valid()], ''],
  ['null', null, ''],
  ['both runAt and delaySeconds', { ...valid(), runAt: '2030-01-01T00:00:00Z', delaySeconds: 60 }, '/delaySeconds'],
  ['a runAt that is not a date-time', { ...valid(), runAt: 'tomorrow' }, '/runAt'],
  ['a runAt without a time zone', { ...valid(), runAt: '2030-01-01T00:00:00' }, '/runAt'],
  ['a runAt in epoch milliseconds', { ...valid(), runAt: 1_900_000_000_000 }, '/runAt'],
  // Each passes the date-time format and would have been a 500 at insert time.
  ['a runAt on a leap second', { ...valid(), runAt: '2030-12-31T23:59:60Z' }, '/runAt'],
  ['a runAt in year 0000', { ...valid(), runAt: '0000-01-01T00:00:00Z' }, '/runAt'],
  ['a runAt that is in year 10000 in UTC', { ...valid(), runAt: '9999-12-31T23:59:59-23:59' }, '/runAt'],
  ['a negative delaySeconds', { ...valid(), delaySeconds: -1 }, '/delaySeconds'],
  ['a delaySeconds over a year', { ...valid(), delaySeconds: 31_536_001 }, '/delaySeconds'],
  ['a fractional delaySeconds', { ...valid(), delaySeconds: 1.5 }, '/delaySeconds'],
  ['a delaySeconds as a string', { ...valid(), delaySeconds: '60' }, '/delaySeconds'],
  ['a maxAttempts of 0', { ...valid(), maxAttempts: 0 }, '/maxAttempts'],
  ['a maxAttempts over 100', { ...valid(), maxAttempts: 101 }, '/maxAttempts'],
  ['a fractional maxAttempts', { ...valid(), maxAttempts: 2.5 }, '/maxAttempts'],
  ['a null maxAttempts', { ...valid(), maxAttempts: null }, '/maxAttempts'],
]

const badIds = ['abc', '0', '-1', '1.5', '99999999999999999999', '1;drop table orders', '1%20OR%201=1']

const rejections: Rejection[] = [
  ...invalidOrders.map(([name, body, path]) => ({
    name: `an order with ${name}`,
    request: postOrder(body),
    status: 400,
    code: 'VALIDATION_FAILED',
    path,
  })),
  {
    name: 'invalid JSON',
    request: postRaw('/orders', 'application/json', '{"customerId":'),
    status: 400,
    code: 'INVALID_JSON',
  },
  { name: 'an empty JSON body', request: postRaw('/orders', 'application/json', ''), status: 400, code: 'EMPTY_BODY' },
  {
    name: 'a __proto__ key',
    request: postRaw('/orders', 'application/json', `{"__proto__":{"admin":true},${JSON.stringify(valid()).slice(1)}`),
    status: 400,
    code: 'INVALID_JSON',
  },
  {
    name: 'a text/plain body',
    request: postRaw('/orders', 'text/plain', JSON.stringify(valid())),
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
  },
  {
    name: 'a form-encoded body',
    request: postRaw('/orders', 'application/x-www-form-urlencoded', 'customerId=c-42&currency=EUR'),
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
  },
  {
    name: 'an order over 256 KiB',
    request: postOrder({ ...valid(), customerId: 'c'.repeat(256 * 1024) }),
    status: 413,
    code: 'BODY_TOO_LARGE',
  },
  {
    name: 'a batch of 1001 orders',
    request: postBatch({ orders: Array.from({ length: 1001 }, valid) }),
    status: 400,
    code: 'VALIDATION_FAILED',
    path: '/orders',
  },
  {
    name: 'an empty batch',
    request: postBatch({ orders: [] }),
    status: 400,
    code: 'VALIDATION_FAILED',
    path: '/orders',
  },
  {
    name: 'a batch with an unknown field',
    request: postBatch({ orders: [valid()], dryRun: true }),
    status: 400,
    code: 'VALIDATION_FAILED',
    path: '/dryRun',
  },
  {
    name: 'a batch with one invalid order among valid ones',
    request: postBatch({ orders: [valid(), valid(), { ...valid(), items: [{ ...validItem, quantity: 0 }] }, valid()] }),
    status: 400,
    code: 'VALIDATION_FAILED',
    path: '/orders/2/items/0/quantity',
  },
  {
    name: 'a batch with both runAt and delaySeconds on one order',
    request: postBatch({ orders: [valid(), { ...valid(), runAt: '2030-01-01T00:00:00Z', delaySeconds: 1 }] }),
    status: 400,
    code: 'VALIDATION_FAILED',
    path: '/orders/1/delaySeconds',
  },
  {
    name: 'a batch with a runAt on a leap second',
    request: postBatch({ orders: [{ ...valid(), runAt: '2030-12-31T23:59:60Z' }, valid()] }),
    status: 400,
    code: 'VALIDATION_FAILED',
    path: '/orders/0/runAt',
  },
  {
    name: 'a body nested 100,000 arrays deep',
    request: postRaw('/orders', 'application/json', nested(100_000, '[', '1', ']')),
    status: 400,
    code: 'VALIDATION_FAILED',
    path: '',
  },
  {
    name: 'a body nested 25,000 objects deep',
    request: postRaw('/orders', 'application/json', nested(25_000, '{"items":', '1', '}')),
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  ...(
    [
      ['an empty Idempotency-Key', ''],
      ['a 256-character Idempotency-Key', 'k'.repeat(256)],
      ['an Idempotency-Key with a space', 'order 42'],
      ['an Idempotency-Key with a tab', 'order\t42'],
      ['a non-ASCII Idempotency-Key', 'commande-n\u00b042'],
      ['an Idempotency-Key that looks like SQL', "'); drop table orders; --"],
    ] as const
  ).map(([name, key]) => ({
    name,
    request: postWithKey(key),
    status: 400,
    code: 'VALIDATION_FAILED',
    path: '/idempotency-key',
  })),
  {
    name: 'two Idempotency-Key headers',
    request: { method: 'POST', url: '/orders', headers: { 'idempotency-key': ['a-1', 'a-2'] }, payload: valid() },
    status: 400,
    code: 'VALIDATION_FAILED',
    path: '/idempotency-key',
  },
  ...['retry', 'cancel'].flatMap((action): Rejection[] => [
    ...badIds.map((id) => ({
      name: `a ${action} of the malformed id ${decodeURIComponent(id)}`,
      request: post(`/orders/${id}/${action}`, undefined),
      status: 400,
      code: 'VALIDATION_FAILED',
      path: '/id',
    })),
    {
      name: `a ${action} of an id nobody has`,
      request: post(`/orders/999999/${action}`, undefined),
      status: 404,
      code: 'ORDER_NOT_FOUND',
    },
    {
      name: `a ${action} with invalid JSON`,
      request: postRaw(`/orders/${failedId}/${action}`, 'application/json', '{'),
      status: 400,
      code: 'INVALID_JSON',
    },
    {
      name: `a ${action} with a text/plain body`,
      request: postRaw(`/orders/${pendingId}/${action}`, 'text/plain', 'please'),
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      name: `a ${action} with a body over 1 MiB`,
      request: postRaw(`/orders/${failedId}/${action}`, 'application/json', `"${'x'.repeat(1024 * 1024)}"`),
      status: 413,
      code: 'BODY_TOO_LARGE',
    },
  ]),
  ...(
    [
      ['no ids in the list', { ids: [] }, '/ids'],
      ['1001 ids', { ids: Array.from({ length: 1001 }, (_, i) => i + 1) }, '/ids'],
      ['an id as a string', { ids: ['1'] }, '/ids/0'],
      ['an id of 0', { ids: [0] }, '/ids/0'],
      ['a fractional id', { ids: [1.5] }, '/ids/0'],
      ['a limit of 0', { limit: 0 }, '/limit'],
      ['a limit over 10000', { limit: 10_001 }, '/limit'],
      ['a limit as a string', { limit: '5' }, '/limit'],
      ['a status filter it does not have', { status: 'failed' }, '/status'],
      ['a list instead of an object', [failedId], ''],
    ] as const
  ).map(([name, body, path]) => ({
    name: `a bulk retry with ${name}`,
    request: post('/orders/retry', body),
    status: 400,
    code: 'VALIDATION_FAILED',
    path,
  })),
  {
    name: 'a status filter that looks like SQL',
    request: { method: 'GET', url: "/orders?status=pending'%20OR%20'1'='1" },
    status: 400,
    code: 'VALIDATION_FAILED',
    path: '/status',
  },
  {
    name: 'a batch over 8 MiB',
    request: postBatch({ orders: Array.from({ length: 1000 }, () => ({ ...valid(), customerId: 'c'.repeat(9000) })) }),
    status: 413,
    code: 'BODY_TOO_LARGE',
  },
]

for (const { name, request, status, code, path } of rejections) {
  t.test(`rejects ${name} with ${status} ${code} and changes nothing`, async (t) => {
    const before = await countOrdersByStatus(db)
    const response = await app.inject(request)
    t.equal(response.statusCode, status)
    const body = response.json()
    t.ok(Value.Check(ErrorResponse, body), 'the body is an ErrorResponse')
    t.match(body, { statusCode: status, code })
    if (path !== undefined) t.equal(body.details?.[0]?.path, path)
    t.same(await countOrdersByStatus(db), before, 'no order stored, retried or cancelled')
  })
}

t.test('names the failing field in the message and details', async (t) => {
  const response = await app.inject(postOrder({ ...valid(), items: [{ ...validItem, quantity: 0 }] }))
  t.same(response.json(), {
    statusCode: 400,
    error: 'Bad Request',
    code: 'VALIDATION_FAILED',
    message: 'body/items/0/quantity must be >= 1',
    details: [{ path: '/items/0/quantity', message: 'must be >= 1' }],
  })
})

t.test('words a rule the schema cannot express like the schema would', async (t) => {
  const response = await app.inject(postOrder({ ...valid(), runAt: '2030-01-01T00:00:00Z', delaySeconds: 60 }))
  t.same(response.json(), {
    statusCode: 400,
    error: 'Bad Request',
    code: 'VALIDATION_FAILED',
    message: 'body/delaySeconds must not be given with runAt',
    details: [{ path: '/delaySeconds', message: 'must not be given with runAt' }],
  })
})

t.test('reports the first problems, not all of them', async (t) => {
  const unknownFields = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`field${i}`, i]))
  const response = await app.inject(postOrder({ ...valid(), ...unknownFields }))
  t.equal(response.statusCode, 400)
  t.same(response.json().details.slice(0, 2), [
    { path: '/field0', message: 'is not an allowed property' },
    { path: '/field1', message: 'is not an allowed property' },
  ])
  t.ok(response.json().details.length <= 10)
})

// SQL in a value is data: parameters carry it, never statement text. Each is stored as sent.
const sqlLookingStrings = [
  "'); drop table orders; --",
  '1 OR 1=1',
  "Robert'); DROP TABLE orders;--",
  '\\\'"; select pg_sleep(10); --',
  '$1::text; $$ $tag$',
  '%s %d %%',
]

t.test('accepts SQL-looking strings, stores them verbatim, and the table survives', async (t) => {
  const sent = sqlLookingStrings.map((text) => ({
    customerId: text,
    currency: 'EUR',
    items: [{ sku: text.slice(0, 64), quantity: 1, unitPriceCents: 100 }],
  }))
  const single = await Promise.all(sent.map((order) => app.inject(postOrder(order))))
  const batch = await app.inject(postBatch({ orders: sent }))
  t.equal(batch.statusCode, 201)
  const ids = [...single.map((response) => response.json().id as number), ...batch.json().ids]

  for (const [i, id] of ids.entries()) {
    const order = sent[i % sent.length]!
    t.equal(single[i]?.statusCode ?? 201, 201, order.customerId)
    t.match((await app.inject({ method: 'GET', url: `/orders/${id}` })).json(), order, 'read back over http')
    const stored = await getOrder(db, id)
    t.equal(stored?.customerId, order.customerId, 'stored verbatim')
    t.same(stored?.items, order.items)
  }
  const [table] = await db.execute(sql`select to_regclass('orders')::text as name`)
  t.equal(table?.name, 'orders', 'the orders table still exists')
})
