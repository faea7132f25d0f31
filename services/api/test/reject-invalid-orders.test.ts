import { listOrders } from '@postgres-queue/db'
import { makeOrder } from '@postgres-queue/devkit'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import Value from 'typebox/value'
import { ErrorResponse } from '../src/schemas/errors.js'
import { startApi } from './helpers.js'

// No test in this file stores anything: after each rejection, the table must still be empty.
const { app, db } = await startApi(t)

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
]

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
    name: 'a batch over 8 MiB',
    request: postBatch({ orders: Array.from({ length: 1000 }, () => ({ ...valid(), customerId: 'c'.repeat(9000) })) }),
    status: 413,
    code: 'BODY_TOO_LARGE',
  },
]

for (const { name, request, status, code, path } of rejections) {
  t.test(`rejects ${name} with ${status} ${code} and stores nothing`, async (t) => {
    const response = await app.inject(request)
    t.equal(response.statusCode, status)
    const body = response.json()
    t.ok(Value.Check(ErrorResponse, body), 'the body is an ErrorResponse')
    t.match(body, { statusCode: status, code })
    if (path !== undefined) t.equal(body.details?.[0]?.path, path)
    t.same(await listOrders(db, { limit: 1 }), [])
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
