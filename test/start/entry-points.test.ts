import { fileURLToPath } from 'node:url'
import { countOrdersByStatus, sql } from '@postgres-queue/db'
import { openEffectsDatabase, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { insertManyOrders } from '../support/effects.js'
import { entryPoints, startService, stopService } from '../support/processes.js'

// The entry points the images run, as they run them: the worker takes a team's own processor from
// the module WORKER_PROCESSOR names (no fork), and stops at start, exit 2, on a module it cannot
// use; both services refuse a schema never migrated with one line; stack traces name the source.

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/dist/${name}.js`, import.meta.url))

t.test("the worker runs the module WORKER_PROCESSOR names: the team's own effects, once per order", async (t) => {
  const { db, url } = await openEffectsDatabase(t, 4)
  await db.execute(sql`create table public.shipments (order_id bigint primary key)`)
  const worker = startService('worker', [entryPoints.worker], {
    DATABASE_URL: url,
    WORKER_PROCESSOR: fixture('shipping-processor'),
    WORKER_CRON: '* * * * * *',
  })
  t.teardown(() => stopService(worker))
  await worker.waitForLine((l) => l.msg === 'worker started')
  const ids = await insertManyOrders(db, 200)
  await waitFor(async () => (await countOrdersByStatus(db)).completed === ids.length, {
    message: 'every order completed',
    timeoutMs: 30_000,
  })
  const [shipments] = await db.execute<{ rows: number; orders: number }>(
    sql`select count(*)::int as rows, count(distinct order_id)::int as orders from public.shipments`,
  )
  t.same(shipments, { rows: ids.length, orders: ids.length }, 'one shipment per order')
})

for (const [what, module, said] of [
  [
    'a module that is not there',
    '/nowhere/processor.js',
    /WORKER_PROCESSOR=\/nowhere\/processor.js could not be loaded/,
  ],
  ['a module that exports no processor', fixture('no-processor'), /exports no processor/],
] as const) {
  t.test(`${what}: the worker says so and exits 2 at start`, async (t) => {
    const worker = startService('worker', [entryPoints.worker], {
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
      WORKER_PROCESSOR: module,
    })
    t.equal(await worker.exited, 2)
    t.match(worker.otherOutput.join('\n'), said)
  })
}

for (const [service, entry] of Object.entries(entryPoints)) {
  t.test(`the ${service} refuses a schema never migrated, with one line saying what to do, and exits 1`, async (t) => {
    const { url } = await openEffectsDatabase(t, 4)
    const started = startService(service, [entry], {
      DATABASE_URL: url,
      DATABASE_SCHEMA: 'never_migrated',
      PORT: '0',
    })
    t.teardown(() => stopService(started))
    t.equal(await started.exited, 1)
    const [line] = started.lines.filter((l) => (l.level as number) >= 60)
    t.match(line, {
      msg: `${service} failed to start`,
      err: { message: /no migrated schema never_migrated: run the migration first/ },
    })
  })
}

t.test("with source maps on, as the images run, a processor's stack trace names its source file", async (t) => {
  const { db, url } = await openEffectsDatabase(t, 4)
  const worker = startService('worker', ['--enable-source-maps', entryPoints.worker], {
    DATABASE_URL: url,
    WORKER_CRON: '* * * * * *',
  })
  t.teardown(() => stopService(worker))
  await worker.waitForLine((l) => l.msg === 'worker started')
  await insertManyOrders(db, 1, { items: [{ sku: 'FAIL', quantity: 1, unitPriceCents: 100 }] })
  const failed = await worker.waitForLine((l) => String(l.msg).startsWith('order failed'))
  t.match((failed.err as { stack: string }).stack, /services\/worker\/src\/processor\.ts:\d+/, 'not dist/main.js')
})
