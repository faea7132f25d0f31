import { createServer, type Socket } from 'node:net'
import t from 'tap'
import { startApi, UNREACHABLE_DATABASE_URL } from './helpers.js'

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
  // Accepts connections and says nothing: the pool waits out its connect timeout.
  const sockets = new Set<Socket>()
  const silent = createServer((socket) => sockets.add(socket))
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const { port } = silent.address() as { port: number }
  const { app } = await startApi(t, { databaseUrl: `postgres://postgres:postgres@127.0.0.1:${port}/x` })
  t.teardown(async () => {
    // Stop accepting first, or the pool reconnects into the silence and closeDb waits it out.
    const closed = new Promise((resolve) => silent.close(resolve))
    for (const socket of sockets) socket.destroy()
    await closed
  })

  const started = performance.now()
  const response = await app.inject({ method: 'GET', url: '/ready' })
  const ms = performance.now() - started
  t.equal(response.statusCode, 503)
  t.ok(ms >= 1900 && ms < 4000, `answered in ${Math.round(ms)} ms`)
})
