import { insertOrders, sql } from '@postgres-queue/db'
import { checkDocumentedMetrics, makeOrder, servedMetrics } from '@postgres-queue/testkit'
import t from 'tap'
import type { App } from '../src/app.js'
import { captureLogs, insertFailedOrders, startApi, UNREACHABLE_DATABASE_URL } from './helpers.js'

async function scrape(app: App): Promise<string> {
  const response = await app.inject({ method: 'GET', url: '/metrics' })
  if (response.statusCode !== 200) throw new Error(`GET /metrics answered ${response.statusCode}`)
  return response.body
}

t.test('GET /metrics serves the Prometheus text format, with process metrics', async (t) => {
  const { app } = await startApi(t)
  const response = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(response.statusCode, 200)
  t.equal(response.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  t.match(response.body, /^# HELP /m)
  t.match(response.body, /^process_cpu_seconds_total /m)
  t.match(response.body, /^nodejs_eventloop_lag_seconds /m)
  t.notMatch(response.body, /^"/, 'the text as is, not a JSON string')
})

t.test('reads queue depth and lag from the database at scrape time', async (t) => {
  const { app, db } = await startApi(t)
  t.match(await scrape(app), /^postgres_queue_depth\{status="pending"\} 0$/m)
  const [old] = await insertOrders(db, [makeOrder(), makeOrder()])
  // Due a minute ago: a runAt in the past is stored as now, so the wait is made in the table.
  await db.execute(sql`update orders set run_at = now() - interval '60 seconds' where id = ${old!.id}`)
  await insertFailedOrders(db, 1)
  const text = await scrape(app)
  t.match(text, /^postgres_queue_depth\{status="pending"\} 2$/m)
  t.match(text, /^postgres_queue_depth\{status="failed"\} 1$/m)
  t.match(text, /^postgres_queue_depth\{status="processing"\} 0$/m)
  t.match(text, /^postgres_queue_stats_up 1$/m)
  const lag = Number(/^postgres_queue_lag_seconds (\S+)$/m.exec(text)?.[1])
  t.ok(lag >= 59 && lag < 70, `lag ${lag}`)
})

t.test('counts stored orders by endpoint; an idempotent replay stores nothing and counts nothing', async (t) => {
  const { app } = await startApi(t)
  const headers = { 'idempotency-key': 'm-1' }
  const single = { method: 'POST' as const, url: '/orders', headers, payload: makeOrder() }
  t.equal((await app.inject(single)).statusCode, 201)
  t.equal((await app.inject(single)).statusCode, 200, 'replayed')
  const batch = { orders: [makeOrder(), makeOrder(), makeOrder()] }
  t.equal((await app.inject({ method: 'POST', url: '/orders/batch', payload: batch })).statusCode, 201)
  const text = await scrape(app)
  t.match(text, /^postgres_queue_orders_submitted_total\{endpoint="single"\} 1$/m)
  t.match(text, /^postgres_queue_orders_submitted_total\{endpoint="batch"\} 3$/m)
})

t.test('times requests by method, route pattern and status code, never by URL', async (t) => {
  const { app } = await startApi(t)
  for (const id of [1, 2, 3]) await app.inject({ method: 'GET', url: `/orders/${id}` })
  await app.inject({ method: 'GET', url: '/no-such-route' })
  const text = await scrape(app)
  const series = 'postgres_queue_http_request_duration_seconds_count'
  const count = (labels: string) => Number(new RegExp(`^${series}\\{${labels}\\} (\\d+)$`, 'm').exec(text)?.[1])
  t.equal(count('method="GET",route="/orders/:id",status_code="404"'), 3, 'three ids, one series')
  t.equal(count('method="GET",route="unmatched",status_code="404"'), 1, 'unknown routes share one series')
  t.notMatch(text, /route="\/orders\/1"/)
})

t.test('a scrape with the database down still answers, with the queue gauges NaN, and logs at debug', async (t) => {
  const { logger, lines } = captureLogs()
  const { app } = await startApi(t, { databaseUrl: UNREACHABLE_DATABASE_URL, logger })
  const started = performance.now()
  const text = await scrape(app)
  t.ok(performance.now() - started < 2500, 'within the stats timeout')
  t.match(text, /^postgres_queue_stats_up 0$/m)
  // prom-client writes NaN as "Nan"; Prometheus reads special values case-insensitively.
  t.match(text, /^postgres_queue_depth\{status="pending"\} NaN$/im)
  t.match(text, /^postgres_queue_lag_seconds NaN$/im)
  t.match(text, /^process_cpu_seconds_total /m, 'the other metrics are there')
  t.match(text, /^postgres_queue_orders_submitted_total\{endpoint="single"\} 0$/m)
  const logged = lines.filter((line) => line.msg === 'queue gauges unavailable for this scrape')
  t.equal(logged.length, 1)
  t.equal(logged[0]?.level, 20, 'at debug')
})

t.test('GET /metrics requires the token when API_TOKEN is set', async (t) => {
  const TOKEN = 'metrics-test-token-0123456789'
  const { app } = await startApi(t, { env: { API_TOKEN: TOKEN } })
  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 401)
  const scraped = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(scraped.statusCode, 200)
})

t.test(
  'the metrics docs/operations.md lists for the api are exactly those served, with their types and labels',
  async (t) => {
    const { app } = await startApi(t)
    await app.inject({ method: 'GET', url: '/queue/stats' }) // a request, so the duration histogram has a sample
    const served = servedMetrics(await scrape(app))
    await checkDocumentedMetrics(t, 'The api', served)
  },
)
