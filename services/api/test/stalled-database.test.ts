import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { countOrdersByStatus, type Db } from '@postgres-queue/db'
import { createTestDatabase, makeOrder, waitFor } from '@postgres-queue/testkit'
import type { InjectOptions } from 'fastify'
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import { lockOrders, startApi } from './helpers.js'

// A database that answers nothing about orders (a migration's lock, a stalled disk), not one that
// is down: every request must still get an answer within a bound, and none may store anything
// while it says 503.

const STATEMENT_TIMEOUT_MS = 500

async function timed(app: App, request: InjectOptions) {
  const started = performance.now()
  const response = await app.inject(request)
  return {
    status: response.statusCode,
    code: response.json().code as string | undefined,
    ms: performance.now() - started,
  }
}

async function setUp(t: Test, env: Record<string, string> = {}): Promise<{ app: App; db: Db; url: string }> {
  const url = await createTestDatabase(t)
  const { app, db } = await startApi(t, {
    databaseUrl: url,
    maxConnections: 4,
    env: { DATABASE_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS), DATABASE_POOL_SIZE: '4', ...env },
  })
  return { app, db, url }
}

t.test('with the orders table locked, every request answers 503 within a bound, and nothing is stored', async (t) => {
  const { app, db, url } = await setUp(t)
  const unlock = await lockOrders(t, url)
  const requests: InjectOptions[] = [
    ...Array.from({ length: 40 }, () => ({ method: 'POST' as const, url: '/orders', payload: makeOrder() })),
    ...Array.from({ length: 40 }, () => ({ method: 'GET' as const, url: '/orders?status=pending' })),
    { method: 'POST', url: '/orders/batch', payload: { orders: [makeOrder(), makeOrder()] } },
    { method: 'POST', url: '/orders/1/cancel' },
  ]
  const started = performance.now()
  const answers = await Promise.all(requests.map((request) => timed(app, request)))
  const slowest = Math.max(...answers.map((a) => a.ms))
  t.ok(
    answers.every((a) => a.status === 503),
    `all 503: ${[...new Set(answers.map((a) => a.code))].join(', ')}`,
  )
  // The pool has 4 connections: four requests at a time wait on the lock, the rest wait in line for
  // them at most a statement timeout.
  t.ok(slowest < 2 * STATEMENT_TIMEOUT_MS + 1000, `82 requests answered within ${Math.round(slowest)} ms`)
  t.ok(
    answers.some((a) => a.code === 'DATABASE_BUSY'),
    'those that waited in line past a statement timeout are refused',
  )
  const ready = await timed(app, { method: 'GET', url: '/ready' })
  t.equal(ready.status, 503, '/ready reports the stall')
  t.ok(ready.ms < 3000)
  t.comment(`stalled for ${Math.round(performance.now() - started)} ms`)
  await unlock()
  t.same(await countOrdersByStatus(db), {
    scheduled: 0,
    waiting: 0,
    pending: 0,
    processing: 0,
    completed: 0,
    failed: 0,
    cancelled: 0,
  })
  t.equal(
    (await timed(app, { method: 'POST', url: '/orders', payload: makeOrder() })).status,
    201,
    'and it serves again',
  )
  t.equal((await timed(app, { method: 'GET', url: '/ready' })).status, 200)
})

t.test('a full intake queue refuses more submissions at once, and /ready says so', async (t) => {
  const { app, db, url } = await setUp(t, { API_INTAKE_QUEUE_LIMIT: '5', DATABASE_STATEMENT_TIMEOUT_MS: '3000' })
  const unlock = await lockOrders(t, url)
  // One insert waits on the lock; five more queue behind it; the rest find the queue full.
  let refusedSoFar = 0
  const submissions = Array.from({ length: 12 }, () =>
    timed(app, { method: 'POST', url: '/orders', payload: makeOrder() }).then((answer) => {
      if (answer.code === 'INTAKE_SATURATED') refusedSoFar++
      return answer
    }),
  )
  await waitFor(() => refusedSoFar > 0, { message: 'a submission refused by the full intake queue' })
  const ready = await timed(app, { method: 'GET', url: '/ready' })
  t.equal(ready.status, 503, 'not ready while the queue is full')
  t.ok(ready.ms < 100, 'said at once, without asking the database')
  await unlock()
  const answers = await Promise.all(submissions)
  const saturated = answers.filter((a) => a.code === 'INTAKE_SATURATED')
  t.equal(saturated.length, 6, 'past the queue: refused')
  t.ok(
    saturated.every((a) => a.status === 503 && a.ms < 1000),
    'at once, not after the 3 s statement timeout',
  )
  t.equal(answers.filter((a) => a.status === 201).length, 6, 'the queued ones are stored once the lock goes')
  t.equal((await countOrdersByStatus(db)).pending, 6, 'and nothing else')
})

t.test('a client trickling its request body is cut off', async (t) => {
  const { app } = await setUp(t, { API_REQUEST_TIMEOUT_MS: '1000' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const socket = connect(port, '127.0.0.1')
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(performance.now())))
  socket.on('error', () => {})
  const started = performance.now()
  socket.write('POST /orders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{')
  const trickle = setInterval(() => socket.write(' '), 300)
  const ended = await Promise.race([closed, sleep(10_000).then(() => undefined)])
  clearInterval(trickle)
  socket.destroy()
  t.ok(ended !== undefined, 'the connection was closed')
  t.ok((ended ?? Number.POSITIVE_INFINITY) - started < 4000, `after ${Math.round((ended ?? 0) - started)} ms`)
})
