import { createTestDatabase, waitFor } from '@postgres-queue/testkit'
import t, { type Test } from 'tap'
import {
  BatchTransaction,
  closeDb,
  createDb,
  type Db,
  type Executor,
  SavepointClosedError,
  SavepointTimeoutError,
  sql,
} from '../src/index.js'

// BatchTransaction pipelines a batch's statements on a connection of its own, and
// runInSavepoint holds a team's CommitWork to its savepoint: whatever it does, it can only write
// there, and only while its savepoint lasts.

/** A BatchTransaction whose first statement is a harmless select, committed after `fn`. */
async function inTransaction<T>(db: Db, fn: (tx: BatchTransaction) => Promise<T>): Promise<T> {
  const { tx } = await BatchTransaction.begin(db, { sql: 'select 1', params: [] })
  try {
    const result = await fn(tx)
    await tx.commit()
    return result
  } catch (err) {
    await tx.rollback()
    throw err
  }
}

async function setUp(t: Test): Promise<Db> {
  const db = createDb(await createTestDatabase(t), { maxConnections: 4 })
  t.teardown(() => closeDb(db))
  await db.execute(sql`create table marks (label text not null)`)
  return db
}

const mark = async (tx: Executor | BatchTransaction, label: string): Promise<void> => {
  if (tx instanceof BatchTransaction) await tx.execute({ sql: 'insert into marks values ($1)', params: [label] })
  else await tx.execute(sql`insert into marks values (${label})`)
}

/** drizzle wraps what the driver throws in a DrizzleQueryError. */
const causeOf = (err: unknown) => (err instanceof Error ? err.cause : undefined)

async function marks(db: Db): Promise<string[]> {
  const rows = await db.execute<{ label: string }>(sql`select label from marks order by label`)
  return rows.map((row) => row.label)
}

t.test('work that succeeds commits with its transaction; work that throws leaves nothing', async (t) => {
  const db = await setUp(t)
  const outcomes = await inTransaction(db, async (tx) => {
    await mark(tx, 'a-outer')
    const ok = await tx.runInSavepoint((sp) => mark(sp, 'b-ok'), { timeoutMs: 1000 })
    const failed = await tx.runInSavepoint(
      async (sp) => {
        await mark(sp, 'c-undone')
        throw new Error('card declined')
      },
      { timeoutMs: 1000 },
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
  const outcome = await inTransaction(db, async (tx) => {
    const result = await tx.runInSavepoint(
      async (sp) => {
        await mark(sp, 'undone')
        await sp.execute(sql`select 1 / 0`).catch(() => {})
      },
      { timeoutMs: 1000 },
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
  const outcome = await inTransaction(db, async (tx) => {
    const result = await tx.runInSavepoint(
      async (sp) => {
        await mark(sp, 'undone')
        await sp.execute(sql`select pg_sleep(30)`) // a lock wait on a hot row, say
      },
      { timeoutMs: 200 },
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
  let committed: () => void = () => {}
  const transactionOver = new Promise<void>((resolve) => (committed = resolve))
  const outcome = await inTransaction(db, async (tx) => {
    const result = await tx.runInSavepoint(
      async (sp) => {
        // Busy in JavaScript past the timeout (nothing to cancel on the server) until the
        // transaction has committed and its connection is back in the pool.
        await transactionOver
        await mark(sp, 'late')
          .catch((err: unknown) => (late = err))
          .finally(lateSettled)
      },
      { timeoutMs: 100 },
    )
    await mark(tx, 'outer')
    return result
  })
  committed()
  t.match(outcome, { ok: false, timedOut: true })
  await settled // long after the transaction committed, its connection back in the pool
  t.type(causeOf(late), SavepointClosedError, 'the late statement is refused before it reaches the server')
  t.same(await marks(db), ['outer'], 'in autocommit on the released connection, it would have been stored')
})

t.test('a statement the work started but did not await belongs to it, and a later one is refused', async (t) => {
  const db = await setUp(t)
  let later: () => Promise<void> = async () => {}
  await inTransaction(db, async (tx) => {
    const outcome = await tx.runInSavepoint(
      async (sp) => {
        // (drizzle's queries are lazy: `catch` is what starts one without awaiting it)
        mark(sp, 'not awaited').catch(() => {})
        later = () => mark(sp, 'after return') // the work keeps its executor, to use it later
      },
      { timeoutMs: 1000 },
    )
    t.same(outcome, { ok: true })
  })
  // Later: the work has returned and its transaction committed.
  const afterwards = await later().then(
    () => undefined,
    (err: unknown) => err,
  )
  t.type(causeOf(afterwards), SavepointClosedError)
  t.same(await marks(db), ['not awaited'])
})

t.test('nested transactions inside the work are savepoints of its savepoint', async (t) => {
  const db = await setUp(t)
  await inTransaction(db, async (tx) => {
    const outcome = await tx.runInSavepoint(
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
      { timeoutMs: 1000 },
    )
    t.same(outcome, { ok: true })
  })
  t.same(await marks(db), ['inner kept', 'kept'])
})

t.test('a nested transaction stuck past the time leaves the outer transaction usable', async (t) => {
  const db = await setUp(t)
  let timedOut: () => void = () => {}
  const timeRanOut = new Promise<void>((resolve) => (timedOut = resolve))
  let nested: Promise<unknown> = Promise.resolve()
  await inTransaction(db, async (tx) => {
    const outcome = await tx.runInSavepoint(
      (sp) =>
        (nested = sp.transaction(async (inner) => {
          await mark(inner, 'undone')
          await timeRanOut
          throw new Error('fails after the time ran out')
        })),
      { timeoutMs: 100 },
    )
    t.match(outcome, { timedOut: true })
    timedOut()
    // The nested one throws now and settles once its rollback was sent or refused: postgres.js must
    // not send that rollback into this transaction.
    await nested.catch(() => {})
    await mark(tx, 'outer')
  })
  t.same(await marks(db), ['outer'])
})

t.test('BEGIN and the first statement share a write; the last statement and COMMIT too', async (t) => {
  const db = await setUp(t)
  const { tx, rows } = await BatchTransaction.begin(db, {
    sql: "insert into marks values ('first') returning label",
    params: [],
  })
  t.same(rows, [['first']], 'rows as arrays of values')
  t.same(await tx.execute({ sql: 'select count(*)::int from marks', params: [] }), [[1]], 'inside the transaction')
  t.same(await marks(db), [], 'not visible outside before the commit')
  t.same(await tx.commit({ sql: "insert into marks values ('last') returning label", params: [] }), [['last']])
  t.same(await marks(db), ['first', 'last'])
})

t.test('a transaction whose connection is killed refuses its later statements, and commits nothing', async (t) => {
  const db = await setUp(t)
  const { tx, rows } = await BatchTransaction.begin(db, { sql: 'select pg_backend_pid()', params: [] })
  await tx.execute({ sql: "insert into marks values ('lost with the transaction')", params: [] })
  await db.execute(sql`insert into marks values ('before')`)
  // A statement in flight when the backend dies is refused when its connection closes: that
  // refusal is the sign that the close has arrived (the pool's connection object then reconnects
  // for others), and only then does the test send the next statement.
  const inFlight = t.rejects(
    tx.execute({ sql: 'select pg_sleep(30)', params: [] }),
    'the statement in flight is refused',
  )
  await waitFor(
    async () => {
      const [running] = await db.execute<{ n: number }>(
        sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and query like '%pg_sleep(30)%' and state = 'active' and pid <> pg_backend_pid()`,
      )
      return running!.n === 1
    },
    { message: 'the in-flight statement to be running' },
  )
  await db.execute(sql`select pg_terminate_backend(${rows[0]![0] as number})`)
  await inFlight
  await t.rejects(tx.execute({ sql: "insert into marks values ('lost')", params: [] }), 'a later statement is refused')
  await t.rejects(tx.commit({ sql: "insert into marks values ('lost too')", params: [] }), 'and so is the commit')
  t.same(await marks(db), ['before'], 'nothing ran in another session')
})
