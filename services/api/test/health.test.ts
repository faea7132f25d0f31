import t from 'tap'
import { startApi, startSilentDatabaseHost, UNREACHABLE_DATABASE_URL } from './helpers.js'

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
