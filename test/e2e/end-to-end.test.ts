import { closeDb, countOrdersByStatus, createDb, type Db, listOrders, type Order } from '@postgres-queue/db'
import { freePort } from '@postgres-queue/devkit'
import { createTestDatabase, makeOrder, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { entryPoints, type ServiceProcess, startService, stopService } from '../support/processes.js'

const ORDERS = 5000
const SINGLE = 1000 // submitted one POST at a time (20 in flight); the rest in batches of 1000

t.test('the real api and three real workers drain 5,000 orders, each exactly once', async (t) => {
  const url = await createTestDatabase(t)
  const db = createDb(url)
  t.teardown(() => closeDb(db))
  const port = await freePort()
  const api = startService('api', [entryPoints.api], { DATABASE_URL: url, PORT: String(port), LOG_LEVEL: 'warn' })
  const workers = [1, 2, 3].map((n) =>
    startService(`worker-${n}`, [entryPoints.worker], {
      DATABASE_URL: url,
      WORKER_ID: `e2e-worker-${n}`,
      WORKER_CRON: '* * * * * *',
      WORKER_JITTER_MS: '200',
    }),
  )
  const all: ServiceProcess[] = [api, ...workers]
  t.teardown(() => Promise.all(all.map((p) => stopService(p))))
  await Promise.all(workers.map((w) => w.waitForLine((l) => l.msg === 'worker started')))
  const base = `http://127.0.0.1:${port}`
  await waitFor(async () => (await fetch(`${base}/ready`).catch(() => undefined))?.status === 200, {
    message: 'the api to answer /ready with 200',
    timeoutMs: 30_000,
    intervalMs: 100,
  })

  const started = Date.now()
  const ids: number[] = []
  const singles = Array.from({ length: SINGLE }, () => makeOrder())
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      for (let order = singles.pop(); order; order = singles.pop()) {
        const response = await post(`${base}/orders`, order)
        t.equal(response.status, 201)
        ids.push(((await response.json()) as { id: number }).id)
      }
    }),
  )
  for (let i = SINGLE; i < ORDERS; i += 1000) {
    const response = await post(`${base}/orders/batch`, { orders: Array.from({ length: 1000 }, () => makeOrder()) })
    t.equal(response.status, 201)
    ids.push(...((await response.json()) as { ids: number[] }).ids)
  }
  t.equal(new Set(ids).size, ORDERS, 'every submission got its own id')

  await waitFor(async () => (await countOrdersByStatus(db)).completed === ORDERS, {
    message: 'every order completed',
    timeoutMs: 120_000,
    intervalMs: 100,
  })
  const drainedMs = Date.now() - started
  t.comment(`submitted and drained ${ORDERS} orders in ${drainedMs} ms`)

  // Exactly once, checked two ways: the database's own record, and the workers' one log line per
  // processed order (which a double processing would print twice, even if the row looked fine).
  const rows = await allOrders(db)
  t.equal(rows.length, ORDERS)
  t.ok(
    rows.every((r) => r.status === 'completed'),
    'every order is completed',
  )
  t.ok(
    rows.every((r) => r.attempts === 1),
    'every order was completed on its first and only attempt',
  )
  const processedBy = new Map<number, string[]>()
  for (const worker of workers) {
    for (const line of worker.lines) {
      if (line.msg !== 'order processed') continue
      const id = line.orderId as number
      processedBy.set(id, [...(processedBy.get(id) ?? []), line.workerId as string])
    }
  }
  t.equal(processedBy.size, ORDERS, 'every order has a processed line')
  t.same(
    [...processedBy.values()].filter((by) => by.length !== 1),
    [],
    'no order was processed twice',
  )
  t.ok(
    rows.every((r) => processedBy.get(r.id)?.[0] === r.completedBy),
    'completed_by names the worker that processed it',
  )
  const perWorker = workers.map((w) => w.lines.filter((l) => l.msg === 'order processed').length)
  t.comment(`orders per worker: ${perWorker.join(', ')}`)
  t.ok(
    perWorker.every((n) => n > 0),
    'all three workers did work',
  )

  const exitCodes = await Promise.all(all.map((p) => stopService(p)))
  t.same(exitCodes, [0, 0, 0, 0], 'SIGTERM stops every process cleanly')
})

async function allOrders(db: Db): Promise<Order[]> {
  const all: Order[] = []
  for (let page = await listOrders(db, { limit: 500 }); page.length > 0; ) {
    all.push(...page)
    page = await listOrders(db, { limit: 500, after: page.at(-1)!.id })
  }
  return all
}

function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}
