import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { createTestDatabase, makeOrder } from '@postgres-queue/testkit'
import { migrate } from 'drizzle-orm/postgres-js/migrator'
import t, { type Test } from 'tap'
import {
  assertMigrated,
  claimBatch,
  closeDb,
  countOrdersByStatus,
  createDb,
  type Db,
  findIdempotencyKeys,
  getOrder,
  insertOrders,
  migrateDatabase,
  NEWEST_MIGRATION,
  schemaState,
  sql,
} from '../src/index.js'

// The queue keeps everything in a schema of its own, so it can move into a database that already
// has an orders table, and an install of the earlier layout (everything in public) is upgraded in place.

async function open(t: Test, url: string, schema?: string): Promise<Db> {
  const db = createDb(url, { maxConnections: 2, schema })
  t.teardown(() => closeDb(db))
  return db
}

/** The tables, sequences and types of a schema, by name. */
async function objectsIn(db: Db, schema: string): Promise<string[]> {
  const rows = await db.execute<{ name: string }>(sql`
    select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = ${schema} and c.relkind in ('r', 'S')
    union all
    select t.typname from pg_type t join pg_namespace n on n.oid = t.typnamespace
    where n.nspname = ${schema} and t.typtype = 'e'
    order by 1`)
  return rows.map((r) => r.name)
}

t.test(
  'migrates into a database that already has public.orders, public.workers and an order_status type',
  async (t) => {
    const url = await createTestDatabase(t, { migrated: false })
    const theirs = await open(t, url, 'public')
    await theirs.execute(sql`create type order_status as enum ('open', 'shipped')`)
    await theirs.execute(sql`create table orders (id serial primary key, sku text, status order_status)`)
    await theirs.execute(sql`create table workers (name text primary key)`)
    await theirs.execute(sql`insert into orders (sku, status) values ('their-sku', 'shipped')`)
    const before = await objectsIn(theirs, 'public')

    await migrateDatabase(url)
    await migrateDatabase(url) // and again: nothing left to do

    t.same(await objectsIn(theirs, 'public'), before, 'nothing of the queue in public')
    t.same(await theirs.execute(sql`select sku, status::text from orders`), [{ sku: 'their-sku', status: 'shipped' }])
    const queue = await open(t, url)
    t.same(await objectsIn(queue, 'postgres_queue'), [
      '__drizzle_migrations',
      '__drizzle_migrations_id_seq',
      'idempotency_keys',
      'order_throughput',
      'ordering_keys',
      'orders',
      'orders_id_seq',
      'workers',
    ])
    const [order] = await insertOrders(queue, [makeOrder()])
    const { tx, orders } = await claimBatch(queue, { limit: 10 })
    await tx.rollback()
    t.same(
      orders.map((o) => o.id),
      [order!.id],
      'the queue works beside them',
    )
  },
)

t.test('two queues in two schemas of one database know nothing of each other', async (t) => {
  const url = await createTestDatabase(t, { migrated: false })
  await migrateDatabase(url, { schema: 'queue_a' })
  await migrateDatabase(url, { schema: 'queue_b' })
  const a = await open(t, url, 'queue_a')
  const b = await open(t, url, 'queue_b')
  await insertOrders(a, [makeOrder(), makeOrder()])
  t.equal((await countOrdersByStatus(a)).pending, 2)
  t.equal((await countOrdersByStatus(b)).pending, 0)
})

t.test('upgrades an install of the earlier layout (everything in public), its orders and keys kept', async (t) => {
  const url = await createTestDatabase(t, { migrated: false })
  const legacy = await open(t, url, 'public')
  await migrate(legacy, { migrationsFolder: fileURLToPath(new URL('../drizzle/legacy', import.meta.url)) })
  await legacy.execute(sql`
    insert into orders (customer_id, currency, items, total_cents, status, run_at, idempotency_key, request_hash)
    values ('due', 'EUR', '[{"sku":"s","quantity":1,"unitPriceCents":1}]', 1, 'pending', now() - interval '1 minute', 'key-1', 'hash-1'),
           ('later', 'EUR', '[{"sku":"s","quantity":1,"unitPriceCents":1}]', 1, 'pending', now() + interval '1 hour', null, null),
           ('done', 'EUR', '[{"sku":"s","quantity":1,"unitPriceCents":1}]', 1, 'completed', now(), null, null)`)

  await migrateDatabase(url)

  t.same(await objectsIn(legacy, 'public'), [], 'nothing left in public, the old enum type included')
  const [journal] = await legacy.execute<{ n: number }>(
    sql`select count(*)::int as n from drizzle.__drizzle_migrations`,
  )
  t.equal(journal!.n, 0, "the old journal no longer lists the queue's migrations")
  const queue = await open(t, url)
  t.match(
    await countOrdersByStatus(queue),
    { scheduled: 1, pending: 1, completed: 1 },
    'a pending order due later is scheduled now',
  )
  t.same(
    (await findIdempotencyKeys(queue, ['key-1'])).get('key-1')?.requestHash,
    'hash-1',
    'its key moved to idempotency_keys',
  )
  const { tx, orders } = await claimBatch(queue, { limit: 10 })
  await tx.rollback()
  t.same(
    orders.map((o) => o.customerId),
    ['due'],
  )
  t.equal((await getOrder(queue, orders[0]!.id))?.leaseToken, 0)
  const [next] = await insertOrders(queue, [makeOrder()])
  t.ok(next!.id > orders[0]!.id, 'the identity sequence moved with its table')
  await migrateDatabase(url) // a later start finds nothing to do
  t.match(await countOrdersByStatus(queue), { scheduled: 1, pending: 2, completed: 1 })
})

t.test('NEWEST_MIGRATION names the last migration of the journal', async (t) => {
  const journal = JSON.parse(await readFile(new URL('../drizzle/meta/_journal.json', import.meta.url), 'utf8')) as {
    entries: { tag: string; when: number }[]
  }
  const last = journal.entries.at(-1)
  t.same(
    NEWEST_MIGRATION,
    { tag: last?.tag, when: last?.when },
    'a new migration: update NEWEST_MIGRATION (migrate.ts)',
  )
})

t.test('schemaState tells a current schema from one never migrated and one behind', async (t) => {
  const url = await createTestDatabase(t)
  t.equal(await schemaState(await open(t, url)), 'current')
  t.equal(await schemaState(await open(t, url, 'never_migrated')), 'unmigrated')
  const db = await open(t, url)
  await db.execute(sql`delete from postgres_queue.__drizzle_migrations where created_at = ${NEWEST_MIGRATION.when}`)
  t.equal(await schemaState(db), 'behind')
  await t.rejects(assertMigrated(db), /behind this version/)
  await t.rejects(
    assertMigrated(await open(t, url, 'never_migrated')),
    /no migrated schema never_migrated: run the migration first/,
  )
})
