import t from 'tap'
import { captureLogs, startApi, startSilentDatabaseHost, UNREACHABLE_DATABASE_URL } from './helpers.js'

t.test('/health answers 200 while the process is up', async (t) => {
  const { app } = await startApi(t)
  const response = await app.inject({ method: 'GET', url: '/health' })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { status: 'ok' })
})

t.test('/health answers 200 even when the database is down', async (t) => {
  const { app } = await startApi(t, { databaseUrl: UNREACHABLE_DATABASE_URL })
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
})

t.test('/ready answers 200 when the database answers', async (t) => {
  const { app } = await startApi(t)
  const response = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { status: 'ok' })
})

t.test('/ready answers 503 when the database refuses connections', async (t) => {
  const { app } = await startApi(t, { databaseUrl: UNREACHABLE_DATABASE_URL })
  const response = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(response.statusCode, 503)
  t.same(response.json(), { status: 'unavailable' })
})

t.test('/ready answers 503 within its 2 s timeout when the database never answers', async (t) => {
  const silent = await startSilentDatabaseHost()
  const { app } = await startApi(t, { databaseUrl: silent.url })
  t.teardown(silent.close)

  const started = performance.now()
  const response = await app.inject({ method: 'GET', url: '/ready' })
  const ms = performance.now() - started
  t.equal(response.statusCode, 503)
  t.ok(ms >= 1900 && ms < 4000, `answered in ${Math.round(ms)} ms`)
})

t.test('probes log no request lines, only their warnings: an info log is not two lines per probe', async (t) => {
  const { logger, lines } = captureLogs()
  const { app } = await startApi(t, { logger })
  for (const url of ['/health', '/ready', '/queue/stats']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url)
  }
  const requestLines = (url: string) => lines.filter((line) => (line.req as { url?: string } | undefined)?.url === url)
  t.same(requestLines('/health'), [], '/health')
  t.same(requestLines('/ready'), [], '/ready')
  // Any other route keeps its request lines: the probes' level is their own.
  t.ok(
    requestLines('/queue/stats').some((line) => line.level === 30),
    '/queue/stats is logged at info',
  )
})

t.test('a failed readiness check still logs its warning', async (t) => {
  const { logger, lines } = captureLogs()
  const { app } = await startApi(t, { logger, databaseUrl: UNREACHABLE_DATABASE_URL })
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 503)
  t.ok(lines.some((line) => line.level === 40 && line.msg === 'database ping failed'))
})
