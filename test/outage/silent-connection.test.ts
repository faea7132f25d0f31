import { createServer, connect as netConnect, type Server, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Db, STALLED_CONNECTION, sql, stallLimitMs } from '@postgres-queue/db'
import { freePort } from '@postgres-queue/devkit'
import { makeOrder, openEffectsDatabase, viaLocalPort, waitFor } from '@postgres-queue/testkit'
import t, { type Test } from 'tap'
import { auditEffects, insertManyOrders } from '../support/effects.js'
import { startEffectWorker } from '../support/fixtures.js'
import {
  entryPoints,
  isRunning,
  linesWith,
  type ServiceProcess,
  startService,
  stopService,
} from '../support/processes.js'

// A connection that stops carrying anything without closing (a failover that moved the server's
// address, a NAT or proxy that lost the flow): no RST, no FIN, and the server's own timeouts cannot
// answer over it. Without a watch of its own, the worker waited on such a connection for as long
// as the kernel kept it open: in the proxy below, forever (packages/db/src/unanswered.ts).

const ORDER_TIMEOUT_MS = 1000
/** start.ts: the worker's statement_timeout is the order timeout + 5 s. */
const STALL_LIMIT_MS = stallLimitMs(ORDER_TIMEOUT_MS + 5000)
const SHUTDOWN_TIMEOUT_MS = 1000
const ORDERS = 2000

t.setTimeout(180_000)

const workerEnv = (mode: string) => ({
  WORKER_MODE: mode,
  WORKER_ORDER_TIMEOUT_MS: String(ORDER_TIMEOUT_MS),
  WORKER_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
  WORKER_LEASE_MS: '2000',
  // Batches take a little time, so the silence finds one in hand.
  PROCESS_MS: '5',
})

for (const mode of ['transaction', 'lease'] as const) {
  t.test(
    `${mode} mode: a worker whose connections go silent exits 1 once a call is past its bound; nothing is lost or done twice`,
    async (t) => {
      const { db, url } = await openEffectsDatabase(t, 4)
      const proxy = await startSilencingProxy(Number(new URL(url).port))
      t.teardown(() => proxy.close())
      const workerId = `${mode}-silenced`
      const silenced = startEffectWorker(workerId, { DATABASE_URL: proxy.url(url), ...workerEnv(mode) })
      const workers: ServiceProcess[] = [silenced]
      t.teardown(() => Promise.all(workers.map((w) => stopService(w))))
      await silenced.waitForLine((l) => l.msg === 'worker started', 60_000)

      const ids = await insertManyOrders(db, ORDERS)
      await waitFor(async () => (await completedCount(db)) >= 200, {
        message: 'the worker to complete 200 orders',
        timeoutMs: 30_000,
        intervalMs: 50,
      })
      const silencedAt = await failOver(proxy, db, `postgres-queue worker ${workerId}`)

      const exitCode = await Promise.race([silenced.exited, sleep(STALL_LIMIT_MS + 20_000, 'still running')])
      const exitedAfterMs = performance.now() - silencedAt
      t.equal(exitCode, 1, 'the worker exited 1, for its orchestrator to restart it')
      const [stall, ...more] = linesWith(silenced, STALLED_CONNECTION)
      t.equal(more.length, 0, 'it said so once')
      t.ok(stall && Number(stall.unansweredMs) >= STALL_LIMIT_MS, 'after a call went unanswered past the limit', {
        stall,
      })
      t.ok(
        exitCode !== 'still running' && exitedAfterMs < STALL_LIMIT_MS + SHUTDOWN_TIMEOUT_MS + 10_000,
        `and exited within ${Math.round(exitedAfterMs)} ms of the silence (limit ${STALL_LIMIT_MS} ms)`,
      )

      // Its replacement, on connections that work, finishes the run.
      const replacement = startEffectWorker(`${mode}-replacement`, { DATABASE_URL: url, ...workerEnv(mode) })
      workers.push(replacement)
      await waitFor(async () => (await completedCount(db)) === ORDERS, {
        message: 'every order completed',
        timeoutMs: 60_000,
        intervalMs: 100,
      })
      t.same(
        await auditEffects(db, ids),
        { missing: [], doubled: [], foreign: 0 },
        'each order took effect exactly once',
      )
    },
  )
}

t.test(
  'a worker kept waiting by the server (orders locked past the limit) is answered by its timeouts, and stays',
  async (t) => {
    const { db, url } = await openEffectsDatabase(t, 4)
    const worker = startEffectWorker('locked-out', { DATABASE_URL: url, ...workerEnv('transaction') })
    t.teardown(() => stopService(worker))
    await worker.waitForLine((l) => l.msg === 'worker started', 60_000)

    const ids = await insertManyOrders(db, ORDERS)
    // Held past the stall limit: each of the worker's statements waits on it until statement_timeout
    // cancels it, so every call is answered, late, and none is a stall.
    await db.transaction(async (tx) => {
      await tx.execute(sql`lock table orders in access exclusive mode`)
      await sleep(STALL_LIMIT_MS + 4000)
    })
    await waitFor(async () => (await completedCount(db)) === ORDERS, {
      message: 'every order completed once the lock was gone',
      timeoutMs: 60_000,
      intervalMs: 100,
    })
    t.ok(isRunning(worker), 'the worker is still running')
    t.same(linesWith(worker, STALLED_CONNECTION), [], 'and saw no stall')
    t.same(await auditEffects(db, ids), { missing: [], doubled: [], foreign: 0 }, 'each order took effect exactly once')
  },
)

t.test(
  'the api: submissions queued behind an insert on a silent connection get their 503 on time, and the api exits 1',
  async (t) => {
    const { db, url } = await openEffectsDatabase(t, 4)
    const statementTimeoutMs = 1000
    const { proxy, api, port } = await startApiThroughProxy(t, url, statementTimeoutMs)
    // Bounded, so that a regression fails the test instead of hanging it.
    const submit = async (timeoutMs = 10_000) => {
      const started = performance.now()
      const response = await fetch(`http://127.0.0.1:${port}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(makeOrder()),
        signal: AbortSignal.timeout(timeoutMs),
      }).catch((err: unknown) => err as Error)
      const answer =
        response instanceof Response
          ? { status: response.status, code: ((await response.json()) as { code?: string }).code }
          : { status: 'error' }
      return { ...answer, ms: performance.now() - started }
    }
    await waitFor(async () => (await submit()).status === 201, {
      message: 'the api to store an order',
      timeoutMs: 60_000,
      intervalMs: 200,
    })

    const silencedAt = await failOver(proxy, db, 'postgres-queue api')
    // The first takes the insert slot, on a silent connection; the rest queue behind it.
    const inFlight = submit(stallLimitMs(statementTimeoutMs) + 25_000)
    await sleep(100)
    const queued = await Promise.all(Array.from({ length: 10 }, () => submit()))
    t.same(
      queued.map((r) => r.code),
      Array(10).fill('INTAKE_TIMEOUT'),
      'each queued submission is refused as not sent',
    )
    t.ok(
      queued.every((r) => r.status === 503 && r.ms < statementTimeoutMs + 1500),
      `with a 503 within the intake's wait (${Math.round(Math.max(...queued.map((r) => r.ms)))} ms at most)`,
    )
    const exitCode = await Promise.race([api.exited, sleep(stallLimitMs(statementTimeoutMs) + 25_000, 'still running')])
    t.equal(exitCode, 1, 'the api exited 1, for its orchestrator to restart it')
    t.equal(linesWith(api, STALLED_CONNECTION).length, 1, 'saying why')
    t.ok(
      performance.now() - silencedAt < stallLimitMs(statementTimeoutMs) + 15_000,
      `within ${Math.round(performance.now() - silencedAt)} ms of the silence`,
    )
    t.equal(
      (await inFlight).status,
      'error',
      'the submission on the silent connection got no answer: its outcome is unknown, and its connection ended',
    )
    t.equal(await storedOrders(db), 1, 'only the order stored before the silence is stored')
  },
)

t.test('the api: reads on a silent connection (the query builder, not only raw SQL) are watched too', async (t) => {
  const { db, url } = await openEffectsDatabase(t, 4)
  const [order] = await insertManyOrders(db, 1)
  const statementTimeoutMs = 1000
  const { proxy, api, port } = await startApiThroughProxy(t, url, statementTimeoutMs)
  const read = (path: string) =>
    fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(stallLimitMs(statementTimeoutMs) + 20_000) })
      .then((response) => response.status)
      .catch(() => 'no answer' as const)
  await waitFor(async () => (await read(`/orders/${order}`)) === 200, {
    message: 'the api to read an order',
    timeoutMs: 60_000,
    intervalMs: 200,
  })

  const silencedAt = await failOver(proxy, db, 'postgres-queue api')
  // Only reads, each through drizzle's query builder: getOrder, listOrders, countOrdersByStatus.
  const reads = Promise.all([`/orders/${order}`, '/orders?status=pending', '/queue/stats'].map(read))
  const exitCode = await Promise.race([api.exited, sleep(stallLimitMs(statementTimeoutMs) + 20_000, 'still running')])
  t.equal(exitCode, 1, 'the api exited 1')
  t.equal(linesWith(api, STALLED_CONNECTION).length, 1, 'saying why')
  t.ok(
    performance.now() - silencedAt < stallLimitMs(statementTimeoutMs) + 15_000,
    `within ${Math.round(performance.now() - silencedAt)} ms of the silence`,
  )
  // A read that opened a new connection after the silence was answered; one on a silent one ended with the api.
  t.comment(`the reads: ${JSON.stringify(await reads)}`)
})

/** The built api, its database reached through a silencing proxy; both stopped when `t` ends. */
async function startApiThroughProxy(t: Test, url: string, statementTimeoutMs: number) {
  const proxy = await startSilencingProxy(Number(new URL(url).port))
  t.teardown(() => proxy.close())
  const port = await freePort()
  const api = startService('api', [entryPoints.api], {
    DATABASE_URL: proxy.url(url),
    PORT: String(port),
    DATABASE_STATEMENT_TIMEOUT_MS: String(statementTimeoutMs),
    LOG_LEVEL: 'warn',
  })
  t.teardown(() => stopService(api))
  return { proxy, api, port }
}

async function storedOrders(db: Db): Promise<number> {
  const [row] = await db.execute<{ n: number }>(sql`select count(*)::int as n from orders`)
  return row?.n ?? 0
}

/**
 * A failover as the client sees it: its connections through `proxy` go silent, and the server's side
 * of them (the sessions of `applicationName`) is gone without a word. Returns when it began.
 */
async function failOver(proxy: SilencingProxy, db: Db, applicationName: string): Promise<number> {
  proxy.silence()
  const at = performance.now()
  await db.execute(
    sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = ${applicationName}`,
  )
  return at
}

async function completedCount(db: Db): Promise<number> {
  const [row] = await db.execute<{ n: number }>(sql`select count(*)::int as n from orders where status = 'completed'`)
  return row?.n ?? 0
}

/**
 * A TCP proxy to the test server whose `silence()` makes every connection open through it carry
 * nothing more, either way, while staying open: the server's closing is not passed on either.
 * Connections made after it work.
 */
type SilencingProxy = Awaited<ReturnType<typeof startSilencingProxy>>

async function startSilencingProxy(targetPort: number) {
  const links: { client: Socket; upstream: Socket; silent: boolean }[] = []
  const server: Server = createServer((client) => {
    const link = { client, upstream: netConnect(targetPort, '127.0.0.1'), silent: false }
    links.push(link)
    const { upstream } = link
    client.on('data', (data) => link.silent || upstream.write(data))
    upstream.on('data', (data) => link.silent || client.write(data))
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.on('error', () => {})
      from.on('close', () => link.silent || to.destroy())
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    /** `target` (a database URL), through the proxy. */
    url: (target: string) => viaLocalPort(target, port),
    silence() {
      for (const link of links) link.silent = true
    },
    async close() {
      for (const { client, upstream } of links) {
        client.destroy()
        upstream.destroy()
      }
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
