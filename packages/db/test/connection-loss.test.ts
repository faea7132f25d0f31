import { setTimeout as sleep } from 'node:timers/promises'
import { createTestDatabase, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { closeDb, createDb, isDatabaseUnavailable, sql } from '../src/index.js'

// Four postgres.js 3.4.9 defects, patched in patches/postgres@3.4.9.patch: each is a way a lost
// connection (an outage, or the server ending an idle transaction) could crash a worker, hang it,
// or, worst, complete orders outside the transaction that held their locks and their processors' writes.

t.test('a transaction whose connection is killed runs none of its later statements anywhere', async (t) => {
  const url = await createTestDatabase(t)
  const db = createDb(url, { maxConnections: 2 })
  const killer = createDb(url, { maxConnections: 1 })
  t.teardown(() => Promise.all([closeDb(db), closeDb(killer)]))
  await db.execute(sql`create table marks (n int)`)

  let late: unknown
  let closeArrived: () => void = () => {}
  const closed = new Promise<void>((resolve) => (closeArrived = resolve))
  let lateSettled = false
  const transaction = db.transaction(async (tx) => {
    const [row] = await tx.execute<{ pid: number }>(sql`select pg_backend_pid() as pid`)
    await killer.execute(sql`select pg_terminate_backend(${row!.pid})`)
    // Once the close has arrived (the pool's connection object then reconnects for others):
    await closed
    await tx
      .execute(sql`insert into marks values (1)`)
      .catch((err: unknown) => (late = err))
      .finally(() => (lateSettled = true))
  })
  // postgres.js rejects the transaction when its connection closes, while the work still runs.
  await t.rejects(transaction.finally(closeArrived), 'the transaction fails')
  // Unpatched, it may never be answered: a deadline, not a bare await.
  await waitFor(() => lateSettled, { message: 'the late statement to be answered' })
  t.ok(isDatabaseUnavailable(late), 'its later statement was refused as a lost connection')
  const [marks] = await db.execute<{ n: number }>(sql`select count(*)::int as n from marks`)
  t.equal(marks!.n, 0, 'and did not run outside the transaction')
})

t.test("a reserved connection's backend dying fails its queries instead of crashing the process", async (t) => {
  const url = await createTestDatabase(t)
  const db = createDb(url, { maxConnections: 2 })
  const killer = createDb(url, { maxConnections: 1 })
  t.teardown(() => Promise.all([closeDb(db), closeDb(killer)]))
  const uncaught: unknown[] = []
  const record = (err: unknown) => uncaught.push(err)
  process.on('uncaughtException', record)
  t.teardown(() => process.off('uncaughtException', record))
  const reserved = await db.$client.reserve()
  t.teardown(() => reserved.release())
  const [row] = await reserved<{ pid: number }[]>`select pg_backend_pid() as pid`
  await killer.execute(sql`select pg_terminate_backend(${row!.pid})`)
  await t.rejects(reserved`select 1`, 'the first query after the kill fails')
  // Unpatched, the next write is either flushed from a setImmediate onto a null socket (an uncaught
  // TypeError that ends the process) or, when it lands between the socket's error and its close,
  // never answered at all: this await then hangs until tap's timeout.
  await t.rejects(reserved`select 1`, 'and so does the next one, instead of hanging')
  // The unpatched crash came from a write flushed on a later turn (setImmediate): let those run.
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve))
  t.same(uncaught, [], 'nothing was thrown outside the queries')
  t.same(await db.execute(sql`select 1 as one`), [{ one: 1 }], 'and the pool still serves queries')
})

t.test('queries queued behind a reserved connection that dies are refused, not left waiting forever', async (t) => {
  const url = await createTestDatabase(t)
  const db = createDb(url, { maxConnections: 2 })
  const killer = createDb(url, { maxConnections: 1 })
  t.teardown(() => Promise.all([closeDb(db), closeDb(killer)]))
  const reserved = await db.$client.reserve()
  t.teardown(() => reserved.release())
  const [row] = await reserved<{ pid: number }[]>`select pg_backend_pid() as pid`
  // More than postgres.js pipelines on one connection (100): the rest wait in the reservation's queue.
  const queries = [reserved`select pg_sleep(5)`, ...Array.from({ length: 150 }, () => reserved`select 1`)]
  const settled = Promise.allSettled(queries)
  await waitFor(
    async () => {
      const [running] = await killer.execute<{ n: number }>(
        sql`select count(*)::int as n from pg_stat_activity where pid = ${row!.pid} and state = 'active' and query like '%pg_sleep(5)%'`,
      )
      return running!.n === 1
    },
    { message: "the reservation's first query to be running" },
  )
  await killer.execute(sql`select pg_terminate_backend(${row!.pid})`)
  const outcome = await Promise.race([settled, sleep(3000).then(() => 'still waiting' as const)])
  t.not(outcome, 'still waiting', 'every query settled once the connection died')
  if (outcome !== 'still waiting')
    t.ok(
      outcome.every((o) => o.status === 'rejected'),
      'each refused',
    )
})

t.test('a new connection whose type fetch fails fails its first query, not the process', async (t) => {
  // postgres.js runs a catalog query of its own (array types) as the first statement of every new
  // connection, and dropped its promise: when it failed (a restart cutting the connection mid-fetch,
  // the statement cancelled), the rejection went unhandled and ended the process. A worker died so
  // in the fault-injection test. Here the fetch fails for sure: the role may not read pg_type.
  const url = await createTestDatabase(t)
  const admin = createDb(url, { maxConnections: 1 })
  const role = `no_types_${process.pid}_${Date.now()}`
  await admin.execute(sql.raw(`create role ${role} login password 'no-types'`))
  await admin.execute(sql`revoke select on pg_catalog.pg_type from public`)
  t.teardown(async () => {
    await admin.execute(sql.raw(`drop role if exists ${role}`)).catch(() => {})
    await closeDb(admin)
  })
  const unhandled: unknown[] = []
  const record = (err: unknown) => unhandled.push(err)
  process.on('unhandledRejection', record)
  t.teardown(() => process.off('unhandledRejection', record))

  const roleUrl = new URL(url)
  roleUrl.username = role
  roleUrl.password = 'no-types'
  const db = createDb(roleUrl.toString(), { maxConnections: 1 })
  t.teardown(() => closeDb(db))
  await t.rejects(
    db.$client`select 1`,
    { code: '42501' },
    'the fetch failed, and with it the query that opened the connection',
  )
  const [row] = await db.$client<{ n: number }[]>`select 1 as n`
  t.equal(row?.n, 1, 'the connection serves the next query')
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve))
  t.same(unhandled, [], 'no rejection went unhandled')
})
