import { setTimeout as sleep } from 'node:timers/promises'
import { createTestDatabase } from '@postgres-queue/devkit'
import t, { type Test } from 'tap'
import {
  closeDb,
  createDb,
  type Db,
  type Executor,
  runInSavepoint,
  SavepointClosedError,
  SavepointTimeoutError,
  sql,
} from '../src/index.js'

// runInSavepoint holds a team's CommitWork to its savepoint: whatever it does, it can only write
// there, and only while its savepoint lasts.

async function setUp(t: Test): Promise<Db> {
  const db = createDb(await createTestDatabase(t), { maxConnections: 4 })
  t.teardown(() => closeDb(db))
  await db.execute(sql`create table marks (label text not null)`)
  return db
}

const mark = (tx: Executor, label: string) => tx.execute(sql`insert into marks values (${label})`)

/** drizzle wraps what the driver throws in a DrizzleQueryError. */
const causeOf = (err: unknown) => (err instanceof Error ? err.cause : undefined)

async function marks(db: Db): Promise<string[]> {
  const rows = await db.execute<{ label: string }>(sql`select label from marks order by label`)
  return rows.map((row) => row.label)
}

t.test('work that succeeds commits with its transaction; work that throws leaves nothing', async (t) => {
  const db = await setUp(t)
  const outcomes = await db.transaction(async (tx) => {
    await mark(tx, 'a-outer')
    const ok = await runInSavepoint(tx, (sp) => mark(sp, 'b-ok'), { timeoutMs: 1000})
    const failed = await runInSavepoint(
      tx,
      async (sp) => {
        await mark(sp, 'c-undone')
        throw new Error('card declined')
      },
      { timeoutMs: 1000},
    )
    await mark(tx, 'd-after')
    return { ok, failed }
  })
  t.same(outcomes.ok, { ok: true })
  t.match(outcomes.failed, { ok: false, timedOut: false, error: { message: 'card declined' } })
  t.same(await marks(db), ['a-outer', 'b-ok', 'd-after'])
})

t.test('a statement that fails inside the work rolls its savepoint back, even if the work catches it', async (t) => {
  const db = await setUp(t)
  const outcome = await db.transaction(async (tx) => {
    const result = await runInSavepoint(
      tx,
      async (sp) => {
        await mark(sp, 'undone')
        await sp.execute(sql`select 1 / 0`).catch(() => {})
      },
      { timeoutMs: 1000},
    )
    await mark(tx, 'after')
    return result
  })
  t.match(outcome, { ok: false, timedOut: false })
  t.same(await marks(db), ['after'], 'the transaction goes on; the work left nothing')
})

t.test('work past its time is cancelled in the database, and its writes are rolled back', async (t) => {
  const db = await setUp(t)
  const started = performance.now()
  const outcome = await db.transaction(async (tx) => {
    const result = await runInSavepoint(
      tx,
      async (sp) => {
        await mark(sp, 'undone')
        await sp.execute(sql`select pg_sleep(30)`) // a lock wait on a hot row, say
      },
      { timeoutMs: 200},
    )
    await mark(tx, 'after')
    return result
  })
  const ms = performance.now() - started
  t.match(outcome, { ok: false, timedOut: true })
  t.type((outcome as { error: unknown }).error, SavepointTimeoutError)
  t.ok(ms < 5000, `the 30 s statement was cancelled, not waited for: ${Math.round(ms)} ms`)
  t.same(await marks(db), ['after'])
  const [running] = await db.execute<{ n: number }>(
    sql`select count(*)::int as n from pg_stat_activity where query like '%pg_sleep(30)%' and state = 'active' and pid <> pg_backend_pid()`,
  )
  t.equal(running!.n, 0, 'nothing of it still runs on the server')
})

t.test('work that keeps its transaction and writes after its time ran out writes nowhere', async (t) => {
  const db = await setUp(t)
  let late: unknown
  let lateSettled: () => void = () => {}
  const settled = new Promise<void>((resolve) => (lateSettled = resolve))
  const outcome = await db.transaction(async (tx) => {
    const result = await runInSavepoint(
      tx,
      async (sp) => {
        await sleep(400) // in JavaScript, past the timeout: nothing to cancel on the server
        await mark(sp, 'late')
          .catch((err: unknown) => (late = err))
          .finally(lateSettled)
      },
      { timeoutMs: 100},
    )
    await mark(tx, 'outer')
    return result
  })
  t.match(outcome, { ok: false, timedOut: true })
  await settled // long after the transaction committed, its connection back in the pool
  t.type(causeOf(late), SavepointClosedError, 'the late statement is refused before it reaches the server')
  t.same(await marks(db), ['outer'], 'in autocommit on the released connection, it would have been stored')
})

t.test('a statement the work started but did not await belongs to it, and a later one is refused', async (t) => {
  const db = await setUp(t)
  let afterwards: unknown
  await db.transaction(async (tx) => {
    const outcome = await runInSavepoint(
      tx,
      async (sp) => {
        // (drizzle's queries are lazy: `catch` is what starts one without awaiting it)
        mark(sp, 'not awaited').catch(() => {})
        setTimeout(() => void mark(sp, 'after return').catch((err: unknown) => (afterwards = err)), 50)
      },
      { timeoutMs: 1000},
    )
    t.same(outcome, { ok: true })
  })
  await sleep(150)
  t.type(causeOf(afterwards), SavepointClosedError)
  t.same(await marks(db), ['not awaited'])
})

t.test('nested transactions inside the work are savepoints of its savepoint', async (t) => {
  const db = await setUp(t)
  await db.transaction(async (tx) => {
    const outcome = await runInSavepoint(
      tx,
      async (sp) => {
        await mark(sp, 'kept')
        await sp
          .transaction(async (inner) => {
            await mark(inner, 'inner undone')
            throw new Error('inner fails')
          })
          .catch(() => {})
        await sp.transaction((inner) => mark(inner, 'inner kept'))
      },
      { timeoutMs: 1000},
    )
    t.same(outcome, { ok: true })
  })
  t.same(await marks(db), ['inner kept', 'kept'])
})

t.test('a nested transaction stuck past the time leaves the outer transaction usable', async (t) => {
  const db = await setUp(t)
  await db.transaction(async (tx) => {
    const outcome = await runInSavepoint(
      tx,
      (sp) =>
        sp.transaction(async (inner) => {
          await mark(inner, 'undone')
          await sleep(300)
          throw new Error('fails after the time ran out')
        }),
      { timeoutMs: 100},
    )
    t.match(outcome, { timedOut: true })
    await sleep(400) // the nested one throws now; postgres.js must not send its rollback into this transaction
    await mark(tx, 'outer')
  })
  t.same(await marks(db), ['outer'])
})

t.test('refuses an executor that is not a drizzle postgres.js transaction', async (t) => {
  const db = await setUp(t)
  await t.rejects(runInSavepoint(db, async () => {}, { timeoutMs: 100}), TypeError)
})
