import { PostgresJsSession, PostgresJsTransaction } from 'drizzle-orm/postgres-js'
import type postgres from 'postgres'
import type { Db, Executor } from './client.js'
import type { BoundQuery } from './statement.js'

/** A query handed to postgres.js: `state` is its connection's backend once sent; `canceller` sends a CancelRequest. */
type PendingQuery = postgres.PendingQuery<postgres.Row[]> & {
  state?: { pid?: number } | null
  canceller?: (query: unknown) => Promise<void>
}

/**
 * Runs a bound Statement through postgres.js as a prepared statement, its rows as arrays of
 * values in select order. Drizzle's own `execute` never prepares, so the server would parse and
 * plan a batch's statements anew every time; the hot ones (a claim, a completion) come here.
 */
export function runPrepared(db: Db, query: BoundQuery): Promise<unknown[][]> {
  return prepared(db.$client, query)
}

function prepared(client: postgres.Sql | postgres.ReservedSql, { sql, params }: BoundQuery) {
  return client.unsafe(sql, params as never[], { prepare: true }).values() as unknown as Promise<unknown[][]>
}

/**
 * A transaction on a connection of its own whose statements are pipelined: BEGIN goes in the same
 * write as the first statement, and the last statement in the same write as COMMIT. A batch then
 * costs two round trips to the server, not four, and a round trip on a loaded machine is a socket
 * write that wakes another process, the largest single cost in a worker's profile.
 *
 * The connection is reserved for the transaction and released by `commit` or `rollback`. If it is
 * lost, every later statement of the transaction is refused (patches/postgres@3.4.9.patch), so none
 * can run in another session. A savepoint's work (CommitWork) gets a fenced drizzle executor:
 * `runInSavepoint`.
 */
export class BatchTransaction {
  private savepoints = 0
  private done = false
  /** When the server last answered on this transaction (performance.now()). */
  private answeredAt = performance.now()

  private constructor(
    readonly db: Db,
    private readonly connection: postgres.ReservedSql,
  ) {}

  /** BEGIN, then `first` in the same write; returns the transaction and `first`'s rows. */
  static async begin(db: Db, first: BoundQuery): Promise<{ tx: BatchTransaction; rows: unknown[][] }> {
    const connection = await db.$client.reserve()
    const tx = new BatchTransaction(db, connection)
    try {
      const [, rows] = await Promise.all([connection.unsafe('begin'), tx.execute(first)])
      tx.answeredAt = performance.now()
      return { tx, rows }
    } catch (err) {
      await tx.rollback()
      throw err
    }
  }

  /**
   * The caller is about to leave the transaction alone for up to `ms` (an order's processing). If by
   * then the session would have sat idle past the server's idle_in_transaction_session_timeout, which
   * ends the session and rolls the transaction back, a statement now restarts the server's count: a
   * batch of orders that each take their time, none of them too long, keeps its transaction. The
   * whole is bounded by the caller's budget, not by this.
   */
  async keepAliveFor(ms: number): Promise<void> {
    const idleLimitMs = Number(this.db.$client.options.connection.idle_in_transaction_session_timeout ?? 0)
    if (idleLimitMs === 0 || performance.now() - this.answeredAt + ms < idleLimitMs - IDLE_MARGIN_MS) return
    await this.connection.unsafe('select 1')
    this.answeredAt = performance.now()
  }

  /** A statement inside the transaction. */
  execute(query: BoundQuery): Promise<unknown[][]> {
    return prepared(this.connection, query)
  }

  /**
   * `statements` (if any) in turn, then COMMIT, in one write; releases the connection. Returns the
   * last statement's rows. Each statement starts when the one before it ended, so it sees what that
   * one waited for (a lock) and wrote.
   */
  async commit(...statements: BoundQuery[]): Promise<unknown[][]> {
    try {
      const results = await Promise.all([...statements.map((q) => this.execute(q)), this.connection.unsafe('commit')])
      this.release()
      return statements.length === 0 ? [] : (results[statements.length - 1] as unknown[][])
    } catch (err) {
      await this.rollback()
      throw err
    }
  }

  /**
   * BEGIN, `statements` in turn and COMMIT, in ONE write: a short transaction of several statements
   * for one round trip. Returns each statement's rows; nothing commits if any fails.
   */
  static async run(db: Db, statements: readonly BoundQuery[]): Promise<unknown[][][]> {
    const connection = await db.$client.reserve()
    const tx = new BatchTransaction(db, connection)
    try {
      const results = await Promise.all([
        connection.unsafe('begin'),
        ...statements.map((q) => tx.execute(q)),
        connection.unsafe('commit'),
      ])
      tx.release()
      return results.slice(1, -1) as unknown[][][]
    } catch (err) {
      await tx.rollback()
      throw err
    }
  }

  /**
   * `last` (its statements in turn), COMMIT, BEGIN and `first` in ONE write: this transaction commits and the next one opens
   * on the same connection, with no round trip between them. Throws if this transaction failed
   * (then the next is rolled back too). If only `first` failed, this one still committed: `next` is
   * then undefined and the connection released.
   */
  async commitAndBegin(
    last: readonly [...BoundQuery[], BoundQuery],
    first: BoundQuery,
  ): Promise<{ rows: unknown[][]; next?: { tx: BatchTransaction; rows: unknown[][] } }> {
    const next = new BatchTransaction(this.db, this.connection)
    this.done = true // the connection passes to `next`, which releases it
    const results = await Promise.allSettled([
      ...last.map((q) => this.execute(q)),
      this.connection.unsafe('commit'),
      this.connection.unsafe('begin'),
      next.execute(first),
    ])
    const claimed = results[last.length + 2] as PromiseSettledResult<unknown[][]>
    // Settling (each statement and the COMMIT) failed: nothing of it committed, and `next` began on
    // a connection in an unknown state, so it goes too.
    const failed = results.slice(0, last.length + 1).find((r) => r.status === 'rejected')
    if (failed) {
      await next.rollback()
      throw failed.reason
    }
    const rows = (results[last.length - 1] as PromiseFulfilledResult<unknown[][]>).value
    if (claimed.status === 'rejected') {
      await next.rollback()
      return { rows }
    }
    return { rows, next: { tx: next, rows: claimed.value } }
  }

  /** Rolls back (best effort: on a lost connection the server already has) and releases the connection. */
  async rollback(): Promise<void> {
    if (this.done) return
    await this.connection.unsafe('rollback').catch(() => {})
    this.release()
  }

  /**
   * Runs `work` in a savepoint, bounded by `timeoutMs`, so that it can only ever write inside that
   * savepoint: its writes commit with the transaction if it succeeds, and are rolled back if it
   * throws or times out, failing only this work, never the transaction.
   *
   * Work is a team's code: it may ignore its time, keep a statement running, or hold on to its
   * executor and use it later. So the executor it gets is fenced: once the savepoint ends, any
   * statement it starts is refused before it reaches the server. On timeout, its running statements
   * are cancelled on the server (a CancelRequest on a socket of its own, never one of the pool's:
   * with every pooled connection a transaction waiting on its own stuck statement, a cancel that
   * needed the pool would wait for them, and they for it), and awaited before the savepoint is
   * rolled back, so the rollback never races them.
   *
   * Never throws for the work's sake; it throws only when the savepoint cannot be set or rolled back
   * (the connection is gone), which fails the transaction as a whole.
   */
  async runInSavepoint(
    work: (tx: Executor) => Promise<unknown>,
    { timeoutMs }: { timeoutMs: number },
  ): Promise<SavepointOutcome> {
    const name = `commit_work_${++this.savepoints}`
    const fence = new Fence()
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs)
    })
    // Sent now (postgres.js queries are lazy: execute() starts it), not awaited: it goes in the same
    // write as the work's first statement. Its outcome is read after the work.
    const savepointSet = this.connection
      .unsafe(`savepoint ${name}`)
      .execute()
      .then(
        () => undefined,
        (err: unknown) => ({ err }),
      )
    try {
      const result = await Promise.race([
        (async () => work(this.fencedExecutor(fence)))().then(
          () => ({ ok: true as const }),
          (error: unknown) => ({ ok: false as const, error }),
        ),
        timedOut,
      ])
      fence.close()
      if (result === 'timeout') await fence.cancelRunning()
      // Statements it started but did not await still belong to it.
      const [, notSet] = await Promise.all([fence.settled(), savepointSet])
      if (notSet) throw notSet.err
      if (result === 'timeout') {
        await this.connection.unsafe(`rollback to savepoint ${name}`)
        return { ok: false, error: new SavepointTimeoutError(timeoutMs), timedOut: true }
      }
      if (!result.ok || fence.failure() !== undefined) {
        // A statement of the work failed (even one it caught): the transaction is aborted until
        // this rollback, which undoes every write of the work.
        await this.connection.unsafe(`rollback to savepoint ${name}`)
        return { ok: false, error: result.ok ? fence.failure() : result.error, timedOut: false }
      }
      return { ok: true }
    } finally {
      clearTimeout(timer)
      fence.close()
      this.answeredAt = performance.now()
    }
  }

  private fencedExecutor(fence: Fence): Executor {
    const { dialect, schema, options } = drizzleOf(this.db)
    const client = fence.wrap(this.connection) as unknown as postgres.Sql
    // Built as drizzle builds a transaction, over the fenced connection.
    const session = new PostgresJsSession(client, dialect, schema, options) as unknown as TxSession
    return new PostgresJsTransaction(dialect, session, schema, 1) as unknown as Executor
  }

  private release(): void {
    if (this.done) return
    this.done = true
    this.connection.release()
  }
}

/** How a savepoint's work ended. */
export type SavepointOutcome =
  | { ok: true }
  /** Its writes were rolled back. `timedOut`: it ran past its time and was cancelled. */
  | { ok: false; error: unknown; timedOut: boolean }

/** Thrown into work that uses its executor after its savepoint ended (it returned, or ran out of time). */
export class SavepointClosedError extends Error {
  override readonly name = 'SavepointClosedError'
  constructor() {
    super('this savepoint is over (its work returned or ran out of time); its transaction can no longer be used')
  }
}

export class SavepointTimeoutError extends Error {
  override readonly name = 'SavepointTimeoutError'
  constructor(timeoutMs: number) {
    super(`did not finish within ${timeoutMs} ms; its statements were cancelled and its writes rolled back`)
  }
}

/** Slack kept below the server's idle bound, for the round trip and a busy event loop. */
const IDLE_MARGIN_MS = 1000

/** A cancel request the server has not taken by then is given up on; the statement_timeout still ends it. */
const CANCEL_TIMEOUT_MS = 2000

/**
 * Guards a connection for one savepoint's work: tracks the statements issued through it, refuses
 * new ones once closed, and nests the work's own transactions as savepoints. Drizzle's postgres.js
 * session issues statements with `unsafe` and nests transactions with `savepoint`, so those are
 * what the wrapper intercepts.
 */
class Fence {
  closed = false
  /** Statements of the work that failed and were not rolled back to a savepoint of its own since. */
  private readonly failures: unknown[] = []
  private readonly running = new Set<PendingQuery>()
  private readonly settledAll: Promise<void>[] = []
  private nested = 0

  close(): void {
    this.closed = true
  }

  /** What failed and left the transaction aborted, if anything (even a failure the work caught). */
  failure(): unknown {
    return this.failures[0]
  }

  async settled(): Promise<void> {
    await Promise.all(this.settledAll)
  }

  async cancelRunning(): Promise<void> {
    await Promise.all(
      [...this.running].map(async (query) => {
        // Resolves once the server has taken the request: the statement then fails, or, if it had
        // just finished, the backend is idle and ignores it, so nothing later on the connection is hit.
        await waitAtMost(query.canceller?.(query), CANCEL_TIMEOUT_MS)
      }),
    )
  }

  wrap(connection: postgres.ReservedSql): postgres.ReservedSql {
    const fence = this
    return new Proxy(connection, {
      apply() {
        // Tagged-template queries: drizzle never issues them; refuse rather than let one through unfenced.
        throw new Error('a fenced transaction runs statements through drizzle only')
      },
      get(target, property, receiver) {
        if (property === 'unsafe') {
          return (...args: Parameters<postgres.ReservedSql['unsafe']>) => {
            if (fence.closed) throw new SavepointClosedError()
            return fence.track(target.unsafe(...args) as PendingQuery)
          }
        }
        if (property === 'savepoint') {
          // The work's own nested transaction: a savepoint inside its savepoint, managed here.
          return async (fn: (inner: postgres.ReservedSql) => unknown) => {
            const name = `nested_${++fence.nested}`
            const failuresBefore = fence.failures.length
            await receiver.unsafe(`savepoint ${name}`)
            try {
              const result = await fn(receiver)
              await receiver.unsafe(`release savepoint ${name}`)
              return result
            } catch (err) {
              if (!fence.closed) {
                await receiver.unsafe(`rollback to savepoint ${name}`)
                // Rolled back to where it began: what failed inside no longer aborts the transaction.
                fence.failures.length = failuresBefore
              }
              throw err
            }
          }
        }
        return Reflect.get(target, property, receiver)
      },
    })
  }

  private track(query: PendingQuery): PendingQuery {
    this.running.add(query)
    this.settledAll.push(
      // `then`, not `finally`: the derived promise must not reject unobserved.
      query.then(
        () => void this.running.delete(query),
        (err: unknown) => {
          this.running.delete(query)
          this.failures.push(err)
        },
      ),
    )
    return query
  }
}

/** Waits for `promise` to settle, or `ms`, whichever comes first; never rejects. */
async function waitAtMost(promise: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!promise) return
  let timer: NodeJS.Timeout | undefined
  await Promise.race([promise.catch(() => {}), new Promise((resolve) => (timer = setTimeout(resolve, ms)))])
  clearTimeout(timer)
}

type TxSession = ConstructorParameters<typeof PostgresJsTransaction>[1]
type Dialect = ConstructorParameters<typeof PostgresJsTransaction>[0]
type RelationalSchema = ConstructorParameters<typeof PostgresJsTransaction>[2]

/**
 * What a drizzle transaction is built from, read off the database object: drizzle keeps them as
 * internal fields (drizzle-orm 0.45). transaction.test.ts fails if that changes.
 */
export function drizzleOf(db: Db): {
  dialect: Dialect
  schema: RelationalSchema
  options: ConstructorParameters<typeof PostgresJsSession>[3]
} {
  const internals = db as unknown as {
    dialect: Dialect
    _: { schema?: unknown; fullSchema?: unknown; tableNamesMap?: unknown }
    session: { options: ConstructorParameters<typeof PostgresJsSession>[3] }
  }
  const { schema, fullSchema, tableNamesMap } = internals._
  const relational = (schema ? { schema, fullSchema, tableNamesMap } : undefined) as RelationalSchema
  return { dialect: internals.dialect, schema: relational, options: internals.session.options }
}
