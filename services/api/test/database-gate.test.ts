import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Db, insertOrders } from '@postgres-queue/db'
import { createTestDatabase, makeOrder, waitFor } from '@postgres-queue/testkit'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { handleError } from '../src/errors.js'
import { databaseGate } from '../src/guards.js'
import { insertFailedOrders, lockOrders, startApi } from './helpers.js'

// The routes that wait on the database share one line for it (guards.ts, databaseGate). However
// clients behave (hanging up before the answer, timing out during a lock, arriving by the hundred),
// the line must give every place back, and a healthy database must serve whatever the pool drains.

const POOL_SIZE = 4

interface Answer {
  status: number
  code?: string
  ms: number
}

/** One request over its own connection; `hangUpAfterMs` closes it then, before the answer if it has not come. */
function send(port: number, method: string, path: string, hangUpAfterMs?: number): Promise<Answer | undefined> {
  const started = performance.now()
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => {
        const code = res.statusCode !== undefined && res.statusCode >= 400 ? JSON.parse(body).code : undefined
        resolve({ status: res.statusCode ?? 0, code, ms: performance.now() - started })
      })
      res.on('error', () => resolve(undefined))
    })
    req.on('error', () => resolve(undefined))
    if (method === 'POST') req.setHeader('content-type', 'application/json')
    req.end(method === 'POST' && path === '/orders/retry' ? '{"limit": 1}' : undefined)
    if (hangUpAfterMs !== undefined) setTimeout(() => req.destroy(), hangUpAfterMs)
  })
}

async function listening(t: Test, env: Record<string, string> = {}) {
  const url = await createTestDatabase(t)
  const { app, db } = await startApi(t, {
    databaseUrl: url,
    maxConnections: POOL_SIZE,
    env: { DATABASE_POOL_SIZE: String(POOL_SIZE), ...env },
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const [order] = await insertOrders(db, [makeOrder()])
  return { db, url, port, orderId: order?.id as number }
}

/** Every gated route, and readiness, answer as they would on a fresh api. */
async function answersNormally(t: Test, db: Db, port: number, orderId: number) {
  const [failed] = await insertFailedOrders(db)
  const reads = await Promise.all(
    Array.from({ length: 50 }, (_, i) => send(port, 'GET', i % 2 ? `/orders/${orderId}` : '/orders?limit=5')),
  )
  t.same(
    reads.map((a) => a?.status),
    reads.map(() => 200),
    'fifty reads at once all answer 200',
  )
  for (const [method, path, status] of [
    ['GET', '/queue/stats', 200],
    ['GET', '/metrics', 200],
    ['GET', '/ready', 200],
    ['POST', `/orders/${failed}/retry`, 200],
    ['POST', '/orders/retry', 200],
  ] as const) {
    t.equal((await send(port, method, path))?.status, status, `${method} ${path}`)
  }
}

t.test('a healthy database serves five hundred concurrent reads, however small the pool', async (t) => {
  const { app, db } = await startApi(t, { maxConnections: POOL_SIZE, env: { DATABASE_POOL_SIZE: String(POOL_SIZE) } })
  const [order] = await insertOrders(db, [makeOrder()])
  // inject: all five hundred reach the gate in the same tick.
  const answers = await Promise.all(Array.from({ length: 500 }, () => app.inject({ url: `/orders/${order?.id}` })))
  const statuses = count(answers.map((a) => ({ status: a.statusCode, code: a.json().code, ms: 0 })))
  t.same(statuses, { 200: 500 }, 'every one answered 200')
})

t.test('five hundred clients, half of them hanging up at once: every place in line comes back', async (t) => {
  const { db, port, orderId } = await listening(t)
  const paths = [
    ['GET', `/orders/${orderId}`],
    ['GET', '/orders?status=pending'],
    ['GET', '/queue/stats'],
    ['GET', '/metrics'],
    ['POST', '/orders/retry'],
  ] as const
  const answers = await Promise.all(
    Array.from({ length: 500 }, (_, i) => {
      const [method, path] = paths[i % paths.length] as (typeof paths)[number]
      return send(port, method, path, i % 2 === 0 ? Math.random() * 3 : undefined)
    }),
  )
  const polite = answers.filter((_, i) => i % 2 === 1)
  t.same(count(polite), { 200: 250 }, 'every client that waited got its 200')
  await answersNormally(t, db, port, orderId)
})

t.test('with the orders table locked, clients that time out leave nothing held once it is free', async (t) => {
  const STATEMENT_TIMEOUT_MS = 1000
  const { db, url, port, orderId } = await listening(t, {
    DATABASE_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
  })
  const unlock = await lockOrders(t, url)
  // Three waves during a 3 s lock, four clients in five with a 200 ms timeout.
  const waves = [0, 1000, 2000].map(async (at) => {
    await sleep(at)
    return Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        send(port, 'GET', i % 3 ? `/orders/${orderId}` : '/queue/stats', i % 5 ? Math.random() * 200 : undefined),
      ).filter((_, i) => i % 5 === 0),
    )
  })
  await sleep(3000)
  await unlock()
  const polite = (await Promise.all(waves)).flat()
  t.same(
    polite.filter((a) => a === undefined || (a.status !== 200 && a.status !== 503)),
    [],
    `every client that waited got an answer: ${JSON.stringify(count(polite))}`,
  )
  const slowest = Math.max(...polite.map((a) => a?.ms ?? 0))
  t.ok(
    slowest < 2 * STATEMENT_TIMEOUT_MS + 1500,
    `the slowest within a wait and a statement: ${Math.round(slowest)} ms`,
  )
  await answersNormally(t, db, port, orderId)
})

function count(answers: readonly (Answer | undefined)[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const a of answers) {
    const key = a === undefined ? 'no answer' : `${a.status}${a.code ? ` ${a.code}` : ''}`
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

t.test(
  'the line: one at a time, a bounded wait, a bounded length, and a client that leaves gives up its place',
  async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    app.setErrorHandler(handleError)
    const gate = databaseGate({ concurrency: 1, maxWaitMs: 300, maxWaiting: 2 })
    app.addHook('preHandler', gate.preHandler)
    app.addHook('onRequestAbort', gate.onRequestAbort)
    app.addHook('onSend', gate.onSend)
    app.addHook('onResponse', gate.onResponse)
    let finish = () => {}
    const handlers: string[] = []
    app.get('/slow/:n', async (request) => {
      const { n } = request.params as { n: string }
      handlers.push(n)
      if (n === '1') await new Promise<void>((resolve) => (finish = resolve))
      return { n }
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as { port: number }

    const first = send(port, 'GET', '/slow/1')
    await waitFor(() => handlers.length === 1, { message: 'the first request running' })
    const leaving = send(port, 'GET', '/slow/2', 50)
    const waiting = send(port, 'GET', '/slow/3')
    await waitFor(() => gate.saturated(), { message: 'two waiting: the line is full' })
    t.equal((await send(port, 'GET', '/slow/4'))?.code, 'DATABASE_BUSY', 'a third is refused at once')
    t.equal(await leaving, undefined, 'a client hangs up while it waits')
    await waitFor(() => !gate.saturated(), { message: 'its place given up' })
    const afterIt = send(port, 'GET', '/slow/5')
    const timedOut = await waiting
    t.equal(timedOut?.code, 'DATABASE_BUSY', 'one that waits past maxWaitMs is refused')
    t.ok((timedOut?.ms ?? 0) >= 290, `after its wait: ${Math.round(timedOut?.ms ?? 0)} ms`)
    finish()
    t.equal((await first)?.status, 200)
    t.equal((await afterIt)?.status, 200, 'the place comes back with the answer, to the next in line')
    t.equal((await send(port, 'GET', '/slow/6'))?.status, 200, 'and to the next request')
    t.same(handlers, ['1', '5', '6'], 'no handler ran for a request refused or abandoned in line')
  },
)
