import { rm, writeFile } from 'node:fs/promises'
import { countOrdersByStatus, insertOrders, sql } from '@postgres-queue/db'
import { makeOrder, openEffectsDatabase, readmeCodeBlock, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import ts from 'typescript'
import { loadConfig } from '../src/config.js'
import { startWorker } from '../src/process/start.js'
import type { OrderProcessor } from '../src/processor.js'

// The README's processor, exactly as shown, against a table of the team's own in public: its
// CommitWork must find the table (the worker's search_path is the queue's schema, then the default),
// and write one row per order, with the completion.

t.test("the README's CommitWork example writes to the team's own public.shipments, once per order", async (t) => {
  const { db, url } = await openEffectsDatabase(t)
  await db.execute(sql`create table public.shipments (order_id bigint primary key)`)
  const snippet = await readmeCodeBlock('ts', 'insert into shipments')
  // What the README leaves to the reader: its own outside call.
  const prelude = 'const reserveStock = async (_items, _options) => {}\n'
  const file = new URL('./.readme-snippet-processor.mjs', import.meta.url)
  await writeFile(
    file,
    prelude + ts.transpileModule(snippet, { compilerOptions: { module: ts.ModuleKind.ESNext } }).outputText,
  )
  t.teardown(() => rm(file, { force: true }))
  const { processOrder } = (await import(file.href)) as { processOrder: OrderProcessor }

  const worker = await startWorker({
    processor: processOrder,
    config: loadConfig({ DATABASE_URL: url, LOG_LEVEL: 'silent', WORKER_CRON: '0 0 * * * *' }),
  })
  t.teardown(() => worker.stop())
  const orders = await insertOrders(
    db,
    Array.from({ length: 20 }, () => makeOrder()),
  )
  await worker.drain()
  await waitFor(async () => (await countOrdersByStatus(db)).completed === orders.length, {
    message: 'every order completed',
  })
  const shipped = await db.execute<{ order_id: string }>(sql`select order_id from public.shipments order by order_id`)
  t.same(
    shipped.map((row) => Number(row.order_id)),
    orders.map((order) => order.id),
    'one shipment per order, in the public schema',
  )
})
