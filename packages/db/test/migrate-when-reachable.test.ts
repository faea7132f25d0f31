import { connect, createServer, type Server, type Socket } from 'node:net'
import { freePort } from '@postgres-queue/devkit'
import { createTestDatabase } from '@postgres-queue/testkit'
import t, { type Test } from 'tap'
import { isDatabaseUnavailable, migrateWhenReachable } from '../src/index.js'

// The migration one-shot starts beside its database (docker compose, a Kubernetes Job): it must wait
// for a database that is not there yet, and must not wait for one that refuses it.

t.test('waits for a database that starts listening later, then migrates', async (t) => {
  const url = new URL(await createTestDatabase(t))
  const port = await freePort()
  const retries: unknown[] = []
  const viaProxy = withPort(url, port)
  // Nothing listens on `port` until the proxy opens, after the first attempts were refused.
  const migrated = migrateWhenReachable(viaProxy, {
    timeoutMs: 20_000,
    onRetry: (err) => {
      retries.push(err)
      if (retries.length === 2) void openProxy(t, port, Number(url.port))
    },
  })
  await migrated
  t.equal(retries.length, 2, 'retried until the database answered')
  t.ok(retries.every(isDatabaseUnavailable), 'only while it was unreachable')
})

t.test('fails at once when the database refuses the login: waiting would not fix it', async (t) => {
  const url = new URL(await createTestDatabase(t))
  url.password = 'not-the-password'
  let retries = 0
  const started = Date.now()
  await t.rejects(migrateWhenReachable(url.toString(), { timeoutMs: 20_000, onRetry: () => retries++ }))
  t.equal(retries, 0)
  t.ok(Date.now() - started < 5000, 'no waiting')
})

t.test('gives up with the connection error once the timeout has passed', async (t) => {
  const url = new URL(await createTestDatabase(t))
  const nothingThere = withPort(url, await freePort())
  const started = Date.now()
  const err = await migrateWhenReachable(nothingThere, { timeoutMs: 1500 }).then(
    () => undefined,
    (e: unknown) => e,
  )
  const elapsed = Date.now() - started
  t.ok(isDatabaseUnavailable(err), 'the last error is the connection error')
  t.ok(elapsed >= 700 && elapsed < 5000, `gave up after ${elapsed} ms`)
})

function withPort(url: URL, port: number): string {
  const copy = new URL(url)
  copy.port = String(port)
  return copy.toString()
}

/** A TCP proxy from `port` to the test cluster, closed when the test ends. */
async function openProxy(t: Test, port: number, target: number): Promise<Server> {
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {
        client.destroy()
        upstream.destroy()
      })
      s.on('close', () => sockets.delete(s))
    }
    client.pipe(upstream).pipe(client)
  })
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  )
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return server
}
