import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { closeDb, createDb, getOrder, listOrders, sql } from '@postgres-queue/db'
import { freePort } from '@postgres-queue/devkit'
import { createTestDatabase, readmeCodeBlock, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { entryPoints, startService, stopService } from '../support/processes.js'

// The README's examples, run as a reader would copy them, against the built api and a worker: the
// shell blocks through bash (curl), the SQL block on a connection of the reader's own.

const run = promisify(execFile)

const url = await createTestDatabase(t)
const db = createDb(url)
t.teardown(() => closeDb(db))
const port = await freePort()
const api = startService('api', [entryPoints.api], { DATABASE_URL: url, PORT: String(port), LOG_LEVEL: 'warn' })
const worker = startService('worker', [entryPoints.worker], {
  DATABASE_URL: url,
  WORKER_CRON: '* * * * * *',
  WORKER_RETRY_BASE_MS: '100',
  LOG_LEVEL: 'warn',
})
t.teardown(() => Promise.all([stopService(api), stopService(worker)]))
await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/ready`).catch(() => undefined))?.status === 200, {
  message: 'the api to be ready',
  timeoutMs: 30_000,
})

/** The README's sh block holding `marker`, run by bash against this test's api. */
async function shell(marker: string): Promise<string> {
  const block = await readmeCodeBlock('sh', marker)
  const { stdout } = await run('bash', [
    '-euo',
    'pipefail',
    '-c',
    block.replaceAll('localhost:3000', `127.0.0.1:${port}`),
  ])
  return stdout
}

t.test('Submit an order: 201, with the order', async (t) => {
  const answer = await shell('"customerId": "c-42", "currency": "EUR", "priority": 0')
  t.match(answer, /^HTTP\/1\.1 201 Created/)
  t.match(answer, /"totalCents":2500/)
})

t.test('Idempotency-Key: the first time 201, then 200 with the same order, replayed', async (t) => {
  const first = await shell('idempotency-key: 5f0c2a6e')
  const again = await shell('idempotency-key: 5f0c2a6e')
  t.match(first, /^HTTP\/1\.1 201 Created/)
  t.match(again, /^HTTP\/1\.1 200 OK/)
  t.match(again, /idempotent-replayed: true/i)
  t.equal(/"id":(\d+)/.exec(again)?.[1], /"id":(\d+)/.exec(first)?.[1])
})

t.test('Make orders fail: the order of sku FAIL is retried, then dead-lettered', async (t) => {
  const { id } = JSON.parse(await shell('"sku": "FAIL"')) as { id: number }
  await waitFor(async () => (await getOrder(db, id))?.status === 'failed', {
    message: 'the order dead-lettered',
    timeoutMs: 20_000,
  })
  t.match(await getOrder(db, id), { status: 'failed', attempts: 2, lastError: /sku FAIL/ })
})

t.test('Submit inside your own transaction: the SQL, as shown, stores the order with the invoice', async (t) => {
  await db.execute(sql`create table public.invoices (customer_id text, amount_cents int)`)
  const block = await readmeCodeBlock('sql', 'insert into invoices')
  const reader = createDb(url, { maxConnections: 1 })
  t.teardown(() => closeDb(reader))
  await reader.$client.unsafe(block)
  const [invoice] = await db.execute(sql`select * from public.invoices`)
  t.match(invoice, { customer_id: 'c-42', amount_cents: 2500 })
  const [order] = await listOrders(db, { order: 'desc', limit: 1 })
  t.match(order, { customerId: 'c-42', totalCents: 2500 })
  await waitFor(async () => (await getOrder(db, order?.id ?? 0))?.status === 'completed', {
    message: 'the worker to complete it',
  })
})
