import { countOrdersByStatus, insertOrders } from '@postgres-queue/db'
import { makeOrder } from '@postgres-queue/testkit'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import Value from 'typebox/value'
import { ErrorResponse } from '../src/schemas/errors.js'
import { captureLogs, startApi } from './helpers.js'

const TOKEN = 'test-token-0123456789abcdef'
const { app, db } = await startApi(t, { env: { API_TOKEN: TOKEN } })
const [order] = await insertOrders(db, [makeOrder()])

const withAuth = (authorization: string | undefined, request: InjectOptions): InjectOptions => ({
  ...request,
  headers: { ...request.headers, ...(authorization === undefined ? {} : { authorization }) },
})

// One of each kind of route, and a route that does not exist: all of them are closed.
const closed: InjectOptions[] = [
  { method: 'POST', url: '/orders', payload: makeOrder() },
  { method: 'POST', url: '/orders/batch', payload: { orders: [makeOrder()] } },
  { method: 'GET', url: `/orders/${order!.id}` },
  { method: 'GET', url: '/orders?status=pending' },
  { method: 'POST', url: `/orders/${order!.id}/cancel` },
  { method: 'POST', url: '/orders/retry', payload: {} },
  { method: 'GET', url: '/queue/stats' },
  { method: 'GET', url: '/queue/throughput' },
  { method: 'GET', url: '/metrics' },
  { method: 'GET', url: '/no-such-route' },
]

const refusals: [name: string, authorization: string | undefined, challenge: string][] = [
  ['no Authorization header', undefined, 'Bearer'],
  ['another scheme', `Basic ${Buffer.from(`api:${TOKEN}`).toString('base64')}`, 'Bearer'],
  ['a bare token, without the scheme', TOKEN, 'Bearer'],
  ['an empty bearer token', 'Bearer ', 'Bearer'],
  ['a wrong token', 'Bearer wrong-token-0123456789abcdef', 'Bearer error="invalid_token"'],
  ['the token with a character missing', `Bearer ${TOKEN.slice(0, -1)}`, 'Bearer error="invalid_token"'],
  ['the token with a character more', `Bearer ${TOKEN}x`, 'Bearer error="invalid_token"'],
  ['the token in another case', `Bearer ${TOKEN.toUpperCase()}`, 'Bearer error="invalid_token"'],
]

for (const [name, authorization, challenge] of refusals) {
  t.test(`answers 401 UNAUTHORIZED to ${name}, on every route, and stores nothing`, async (t) => {
    const before = await countOrdersByStatus(db)
    for (const request of closed) {
      const response = await app.inject(withAuth(authorization, request))
      const label = `${request.method} ${request.url}`
      t.equal(response.statusCode, 401, label)
      t.equal(response.headers['www-authenticate'], challenge, label)
      t.ok(Value.Check(ErrorResponse, response.json()), 'the body is an ErrorResponse')
      t.match(response.json(), { statusCode: 401, error: 'Unauthorized', code: 'UNAUTHORIZED' })
      t.notMatch(response.body, TOKEN, 'the token is not echoed')
    }
    t.same(await countOrdersByStatus(db), before, 'nothing stored or cancelled')
  })
}

t.test('serves every route to the right token', async (t) => {
  const expected = [201, 201, 200, 200, 200, 200, 200, 200, 200, 404]
  for (const [i, request] of closed.entries()) {
    const response = await app.inject(withAuth(`Bearer ${TOKEN}`, request))
    t.equal(response.statusCode, expected[i], `${request.method} ${request.url}`)
  }
})

t.test('reads the scheme case-insensitively, as RFC 9110 says', async (t) => {
  const response = await app.inject(withAuth(`bearer ${TOKEN}`, { method: 'GET', url: `/orders/${order!.id}` }))
  t.equal(response.statusCode, 200)
})

t.test('refuses before reading the body: a bad body without the token is a 401, not a 400', async (t) => {
  const response = await app.inject({
    method: 'POST',
    url: '/orders',
    headers: { 'content-type': 'application/json' },
    payload: '{"not json',
  })
  t.equal(response.statusCode, 401)
})

t.test('leaves /health and /ready open, whatever the Authorization header', async (t) => {
  for (const authorization of [undefined, 'Bearer wrong-token-0123456789abcdef']) {
    for (const url of ['/health', '/ready', '/health?probe=1']) {
      const response = await app.inject(withAuth(authorization, { method: 'GET', url }))
      t.equal(response.statusCode, 200, `${url} with ${authorization ?? 'no token'}`)
    }
  }
  t.equal((await app.inject({ method: 'HEAD', url: '/health' })).statusCode, 200, 'HEAD /health')
})

t.test('leaves the dashboard and the API docs open: no data in them, and browsers cannot send tokens', async (t) => {
  for (const url of ['/', '/dashboard/dashboard.js', '/docs', '/docs/json']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url)
  }
})

t.test('without API_TOKEN, no route asks for one', async (t) => {
  const { app } = await startApi(t)
  const response = await app.inject({ method: 'POST', url: '/orders', payload: makeOrder() })
  t.equal(response.statusCode, 201)
  t.notOk(response.headers['www-authenticate'])
})

t.test('an api without a token warns at start when it listens beyond this machine, and only then', async (t) => {
  const warnings = async (host: string, env: Record<string, string> = {}) => {
    const { logger, lines } = captureLogs()
    const { app: listening } = await startApi(t, { logger, env })
    await listening.listen({ port: 0, host })
    const said = lines.filter((l) => String(l.msg).startsWith('API_TOKEN is not set')).length
    await listening.close()
    return said
  }
  t.equal(await warnings('0.0.0.0'), 1, 'every interface: warned once')
  t.equal(await warnings('127.0.0.1'), 0, 'loopback: a local try, nothing to say')
  t.equal(await warnings('0.0.0.0', { API_TOKEN: TOKEN }), 0, 'with a token: nothing to say')
})
