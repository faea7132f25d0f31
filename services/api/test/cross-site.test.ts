import { getOrder, insertOrders } from '@postgres-queue/db'
import { createTestDatabase, makeOrder } from '@postgres-queue/testkit'
import t from 'tap'
import { startApi } from './helpers.js'

// With no API_TOKEN, the api trusts whoever reaches it: a page in an operator's browser must not
// be able to act through it. Browsers mark where a request comes from; tools like curl do not.

const url = await createTestDatabase(t)
const { app, db } = await startApi(t, { databaseUrl: url })

async function cancel(headers: Record<string, string>, through = app) {
  const [order] = await insertOrders(db, [makeOrder()])
  const response = await through.inject({ method: 'POST', url: `/orders/${order!.id}/cancel`, headers })
  return { response, status: (await getOrder(db, order!.id))?.status }
}

t.test('refuses a state-changing request a browser sends from another site, and changes nothing', async (t) => {
  for (const headers of <Record<string, string>[]>[
    { 'sec-fetch-site': 'cross-site' },
    { 'sec-fetch-site': 'same-site' },
    { origin: 'https://evil.example' },
    { origin: 'null' },
  ]) {
    const { response, status } = await cancel(headers)
    t.equal(response.statusCode, 403, JSON.stringify(headers))
    t.equal(response.json().code, 'CROSS_SITE_REQUEST')
    t.equal(status, 'pending', 'the order was not cancelled')
  }
  const text = await app.inject({
    method: 'POST',
    url: '/orders',
    headers: { 'sec-fetch-site': 'cross-site', 'content-type': 'text/plain' },
    payload: JSON.stringify(makeOrder()),
  })
  t.equal(text.statusCode, 403, 'a text/plain "simple request" is refused before its body is looked at')
})

t.test('serves the same page, and clients that are not browsers', async (t) => {
  const sameOrigin = await cancel({
    'sec-fetch-site': 'same-origin',
    origin: 'http://localhost:80',
    host: 'localhost:80',
  })
  t.equal(sameOrigin.response.statusCode, 200, 'the dashboard itself')
  t.equal(sameOrigin.status, 'cancelled')
  const curl = await cancel({})
  t.equal(curl.response.statusCode, 200, 'no Origin, no Sec-Fetch-Site: curl, a service')
  t.equal(curl.status, 'cancelled')
})

t.test('serves the dashboard behind a proxy that rewrites Host: the browser says same-origin', async (t) => {
  // nginx's default `proxy_set_header Host $proxy_host`: the page is https://queue.example.com, the
  // api sees Host: api:3000.
  const { response, status } = await cancel({
    'sec-fetch-site': 'same-origin',
    origin: 'https://queue.example.com',
    host: 'api:3000',
  })
  t.equal(response.statusCode, 200)
  t.equal(status, 'cancelled')
})

t.test('API_ALLOWED_ORIGINS admits the pages it names, for browsers that send only Origin', async (t) => {
  const named = await startApi(t, {
    databaseUrl: url,
    env: { API_ALLOWED_ORIGINS: 'https://queue.example.com, https://ops.example.com:8443' },
  })
  const behindProxy = { origin: 'https://queue.example.com', host: 'api:3000' }
  t.equal((await cancel(behindProxy)).response.statusCode, 403, 'not named: another host')
  const allowed = await cancel(behindProxy, named.app)
  t.equal(allowed.response.statusCode, 200, 'named')
  t.equal(allowed.status, 'cancelled')
  const otherSite = await cancel({ 'sec-fetch-site': 'same-site', origin: 'https://ops.example.com:8443' }, named.app)
  t.equal(otherSite.response.statusCode, 200, 'a named origin on another site of its own')
  const stranger = await cancel({ 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' }, named.app)
  t.equal(stranger.response.statusCode, 403, 'and no other')
  t.equal(stranger.status, 'pending')
})

t.test('lets reads through from anywhere: they change nothing', async (t) => {
  const response = await app.inject({ method: 'GET', url: '/orders', headers: { 'sec-fetch-site': 'cross-site' } })
  t.equal(response.statusCode, 200)
})
