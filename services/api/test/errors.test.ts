import { makeOrder } from '@postgres-queue/testkit'
import t from 'tap'
import Value from 'typebox/value'
import { ErrorResponse } from '../src/schemas/errors.js'
import { captureLogs, startApi, UNREACHABLE_DATABASE_URL } from './helpers.js'

t.test('answers an unknown route with a 404 in the error shape', async (t) => {
  const { app } = await startApi(t)
  for (const [method, url] of [
    ['GET', '/nope'],
    ['DELETE', '/orders/1'],
    ['PUT', '/orders'],
  ] as const) {
    const response = await app.inject({ method, url })
    t.equal(response.statusCode, 404, `${method} ${url}`)
    t.same(response.json(), {
      statusCode: 404,
      error: 'Not Found',
      code: 'NOT_FOUND',
      message: `Route ${method} ${url} not found`,
    })
  }
})

t.test('answers an unexpected error with a generic 500 and logs it whole', async (t) => {
  const { logger, lines } = captureLogs()
  const { app } = await startApi(t, { logger })
  app.get('/fails', async () => {
    throw new Error('connect to db.internal:5432 as admin/hunter2 failed')
  })

  const response = await app.inject({ method: 'GET', url: '/fails' })

  t.equal(response.statusCode, 500)
  t.same(response.json(), {
    statusCode: 500,
    error: 'Internal Server Error',
    code: 'INTERNAL_SERVER_ERROR',
    message: 'An unexpected error occurred',
  })
  t.notMatch(response.body, /hunter2|db\.internal|Error:|at /, 'nothing internal leaks')
  const logged = lines.find((line) => line.msg === 'request failed')
  t.match(logged, { level: 50, err: { type: 'Error', message: /hunter2/, stack: /errors\.test\.ts/ } })
})

t.test('answers 503 DATABASE_UNAVAILABLE with Retry-After when the database is down', async (t) => {
  const { logger, lines } = captureLogs()
  const { app } = await startApi(t, { databaseUrl: UNREACHABLE_DATABASE_URL, logger })
  const requests = [
    { method: 'POST', url: '/orders', payload: makeOrder() },
    { method: 'POST', url: '/orders/batch', payload: { orders: [makeOrder()] } },
    { method: 'GET', url: '/orders/1' },
    { method: 'GET', url: '/orders' },
  ] as const

  for (const request of requests) {
    const response = await app.inject(request)
    t.equal(response.statusCode, 503, `${request.method} ${request.url}`)
    t.equal(response.headers['retry-after'], '5')
    const body = response.json()
    t.ok(Value.Check(ErrorResponse, body), 'the body is an ErrorResponse')
    t.match(body, { statusCode: 503, error: 'Service Unavailable', code: 'DATABASE_UNAVAILABLE', message: /database/ })
    t.notMatch(response.body, /ECONNREFUSED|127\.0\.0\.1/, 'no connection details leak')
  }
  t.equal(lines.filter((line) => line.msg === 'database unavailable' && line.level === 40).length, requests.length)
})

t.test('logs never carry order contents or SQL parameters: a failed query is logged without them', async (t) => {
  const { logger, lines } = captureLogs()
  const { app } = await startApi(t, { databaseUrl: UNREACHABLE_DATABASE_URL, logger })
  const customerId = 'customer-with-a-secret-marker'
  for (const request of [
    { method: 'POST', url: '/orders', payload: makeOrder({ customerId }) },
    { method: 'POST', url: '/orders/batch', payload: { orders: [makeOrder({ customerId })] } },
  ] as const) {
    t.equal((await app.inject(request)).statusCode, 503)
  }
  const logged = JSON.stringify(lines)
  t.ok(
    lines.some((line) => line.msg === 'database unavailable'),
    'the 503s are logged',
  )
  t.notMatch(logged, /secret-marker/, 'no order contents')
  t.notMatch(logged, /insert into|unnest\(/i, 'no statement')
  t.match(
    lines.find((line) => line.msg === 'database unavailable'),
    {
      err: { message: /failed query \(its statement and parameters are not logged\)/, cause: { code: 'ECONNREFUSED' } },
    },
  )
})
