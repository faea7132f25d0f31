import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { createTestDatabase, makeOrder, openTestDb, waitFor } from '@postgres-queue/testkit'
import pg from 'pg'
import postgres from 'postgres'
import t from 'tap'
import {
  channelOf,
  closeDb,
  createDb,
  type Db,
  getOrder,
  listOrders,
  migrationsFolder,
  OrderRefusedError,
  sql,
  submissionFunctionsSql,
  submitOrder,
  submitOrders,
} from '../src/index.js'
import { NewOrderBody } from '../src/submission/rules.js'
import { checksSql } from '../src/submission/sql.js'

// Submission inside a team's own transaction: submit_order and submit_orders (the generated SQL
// functions) through submitOrder on each driver a Node service uses. Its rules agree with POST
// /orders: services/api/test/sql-submission.test.ts.

t.test('the latest migration holds the submission functions as the rules generate them now', async (t) => {
  const files = (await readdir(migrationsFolder)).filter((f) => f.endsWith('.sql')).sort()
  const texts = await Promise.all(files.map((f) => readFile(path.join(migrationsFolder, f), 'utf8')))
  const latest = texts.filter((text) => text.includes('pnpm db:submission')).at(-1)
  t.equal(
    latest,
    submissionFunctionsSql(),
    'a rule changed (submission/rules.ts): `pnpm db:generate --custom --name=<why>`, then `pnpm db:submission <that file>`',
  )
})

t.test('the generator stops at a rule it cannot translate, rather than leave it out of SQL', async (t) => {
  const withNewRule = {
    ...NewOrderBody,
    properties: { ...NewOrderBody.properties, note: { type: 'string', multipleOf: 2 } },
  }
  t.throws(() => checksSql(withNewRule), /no translation for the keyword multipleOf/)
  const withNewPattern = {
    ...NewOrderBody,
    properties: { ...NewOrderBody.properties, note: { type: 'string', pattern: '^[a-z]+$' } },
  }
  t.throws(() => checksSql(withNewPattern), /no translation for the pattern/)
})

/** Each driver's way of running `work` in a transaction that commits, or rolls back when `work` throws. */
const drivers: Record<string, (url: string, db: Db, work: (tx: never) => Promise<unknown>) => Promise<unknown>> = {
  'postgres.js': async (url, _db, work) => {
    const client = postgres(url, { max: 1, onnotice: () => {} })
    try {
      return await client.begin((tx) => work(tx as never))
    } finally {
      await client.end()
    }
  },
  'node-postgres': async (url, _db, work) => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      await client.query('begin')
      const result = await work(client as never)
      await client.query('commit')
      return result
    } catch (err) {
      await client.query('rollback')
      throw err
    } finally {
      await client.end()
    }
  },
  drizzle: (_url, db, work) => db.transaction((tx) => work(tx as never)),
}

for (const [driver, inTransaction] of Object.entries(drivers)) {
  t.test(`${driver}: an order stored with the caller's commit, nothing with its rollback`, async (t) => {
    const url = await createTestDatabase(t)
    const db = createDb(url)
    t.teardown(() => closeDb(db))
    await db.execute(sql`create table public.invoices (id serial primary key, order_id bigint)`)

    const id = await inTransaction(url, db, async (tx) => {
      const orderId = await submitOrder(tx, makeOrder())
      await submitOrders(tx, [makeOrder(), makeOrder({ delaySeconds: 60 })])
      return orderId
    })
    t.match(await getOrder(db, id as number), { status: 'pending', attempts: 0 }, 'committed with the transaction')
    t.equal((await listOrders(db, { limit: 10 })).length, 3)
    t.equal((await listOrders(db, { status: 'scheduled', limit: 10 })).length, 1, 'a delay on the database clock')

    await t.rejects(
      inTransaction(url, db, async (tx) => {
        await submitOrder(tx, makeOrder())
        throw new Error('the caller changes its mind')
      }),
      /changes its mind/,
    )
    t.equal((await listOrders(db, { limit: 10 })).length, 3, 'a rollback leaves nothing')

    await t.rejects(
      inTransaction(url, db, (tx) => submitOrder(tx, { ...makeOrder(), items: [] })),
      new OrderRefusedError('order/items must have at least 1 items'),
      'refused with the rule it breaks',
    )
  })
}

t.test("the workers' wake-up rides on the caller's commit: none before it, none after a rollback", async (t) => {
  const db = await openTestDb(t)
  const woken: string[] = []
  const { unlisten } = await db.$client.listen(channelOf(db), (payload) => woken.push(payload))
  t.teardown(unlisten)
  await db.$client
    .begin(async (tx) => {
      await submitOrder(tx, makeOrder())
      throw new Error('rolled back')
    })
    .catch(() => {})
  await db.$client.begin(async (tx) => {
    await submitOrder(tx, makeOrder({ delaySeconds: 30 }))
    await submitOrder(tx, makeOrder())
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.same(woken, [], 'nothing while the transaction is open')
  })
  await waitFor(() => woken.length >= 2, { message: 'the wake-ups after the commit' })
  const [scheduled] = await listOrders(db, { status: 'scheduled', limit: 1 })
  t.equal(woken.length, 2, 'two: one for the orders due now, one naming when the delayed one comes due')
  t.ok(woken.includes(''), 'due now')
  const named = Number(woken.find((payload) => payload !== ''))
  t.ok(Math.abs(named - (scheduled?.runAt.getTime() ?? 0)) <= 1, 'the delayed order, by its due time')
})

t.test('a role that may only submit: EXECUTE on the functions, nothing on the tables', async (t) => {
  const url = await createTestDatabase(t)
  const db = createDb(url)
  t.teardown(() => closeDb(db))
  const role = `submitter_${Math.random().toString(36).slice(2, 8)}`
  await db.execute(sql.raw(`create role ${role} login password 'submit-only'`))
  t.teardown(() => db.execute(sql.raw(`drop owned by ${role}; drop role ${role}`)))
  // The README's grants, for the app's own database user.
  await db.execute(
    sql.raw(`grant usage on schema postgres_queue to ${role};
      grant execute on function postgres_queue.submit_order(jsonb, text), postgres_queue.submit_orders(jsonb, text) to ${role}`),
  )
  const asRole = new URL(url)
  asRole.username = role
  asRole.password = 'submit-only'
  const app = postgres(asRole.toString(), { max: 1, onnotice: () => {} })
  t.teardown(() => app.end())

  const id = await app.begin((tx) => submitOrder(tx, makeOrder()))
  t.match(await getOrder(db, id), { status: 'pending' }, 'it submits')
  await t.rejects(app`select * from postgres_queue.orders`, /permission denied/, 'reads nothing')
  await t.rejects(app`update postgres_queue.orders set priority = 9`, /permission denied/, 'changes nothing')
  await t.rejects(
    app`select postgres_queue.store_submission('[]', null, '')`,
    /permission denied/,
    'and calls nothing but the two functions',
  )
})
