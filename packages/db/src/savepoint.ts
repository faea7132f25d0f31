import type { RelationalSchemaConfig, TablesRelationalConfig } from 'drizzle-orm'
import { PostgresJsSession, PostgresJsTransaction } from 'drizzle-orm/postgres-js'
import type postgres from 'postgres'
import type { Executor } from './client.js'

/** How a savepoint's work ended. */
export type SavepointOutcome =
  | { ok: true }
  /** Its writes were rolled back. `timedOut`: it ran past its time and was cancelled. */
  | { ok: false; error: unknown; timedOut: boolean }

/** Thrown into work that uses its transaction after the savepoint ended (it ran out of time, or returned). */
export class SavepointClosedError extends Error {
  override readonly name = 'SavepointClosedError'
  constructor() {
    super('this savepoint is over (its work returned or ran out of time); its transaction can no longer be used')
  }
}

/** A query handed to the server, as postgres.js represents it (`state` is its connection's backend, once sent). */
type PendingQuery = postgres.PendingQuery<postgres.Row[]> & { state?: { pid?: number } | null }

/**
 * Runs `work` in a savepoint of `tx`, bounded by `timeoutMs`, so that it can only ever write inside
 * that savepoint: its writes commit with `tx` if it succeeds, and are rolled back if it throws or
 * times out, failing only this work, never `tx`.
 *
 * Work is a team's code: it may ignore its time, keep a statement running, or hold on to its
 * transaction and use it later. So the executor it gets is fenced. Once the savepoint ends, any
 * statement it starts is refused without reaching the server (it could otherwise run on the
 * connection after `tx` committed, in autocommit or inside another transaction). On timeout its
 * running statements are cancelled on the server (a CancelRequest, as psql's Ctrl-C sends) and
 * awaited before the savepoint is rolled back, so the rollback never races them.
 *
 * Never throws for the work's sake; it throws only when the savepoint itself cannot be set or
 * rolled back (the connection is gone), which fails `tx` as a whole.
 */
export async function runInSavepoint(
  tx: Executor,
  work: (tx: Executor) => Promise<unknown>,
  { timeoutMs }: { timeoutMs: number },
): Promise<SavepointOutcome> {
  const { session, dialect, schema } = drizzleInternals(tx)
  const fence = new Fence()
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs)
  })
  let started = false
  try {
    await session.client.savepoint(async (scoped: postgres.TransactionSql) => {
      started = true
      // Built as drizzle builds a nested transaction, over the fenced scope.
      // (drizzle's own types do not admit a transaction scope here; its runtime does the same)
      const scope = fence.wrap(scoped) as unknown as postgres.Sql
      const fencedSession = new PostgresJsSession(scope, dialect, schema, session.options) as unknown as TxSession
      const fenced = new PostgresJsTransaction(dialect, fencedSession, schema, 1) as unknown as Executor
      const result = await Promise.race([
        work(fenced).then(
          () => ({ ok: true as const }),
          (error: unknown) => ({ ok: false as const, error }),
        ),
        timedOut,
      ])
      fence.close()
      if (result === 'timeout') {
        await fence.cancelRunning()
        throw new SavepointTimeoutError(timeoutMs)
      }
      // Statements it started but did not await still belong to it: they finish inside the
      // savepoint, and postgres.js rolls the savepoint back if one of them failed.
      await fence.settled()
      if (!result.ok) throw new WorkFailed(result.error)
    })
    return { ok: true }
  } catch (err) {
    // The savepoint could not even be set: the transaction is broken, and that is not the work's doing.
    if (!started) throw err
    if (err instanceof SavepointTimeoutError) return { ok: false, error: err, timedOut: true }
    // The work threw, or one of its statements failed (even one it caught: postgres.js rolls the
    // savepoint back then). Were the rollback itself to fail, the transaction's next statement fails.
    return { ok: false, error: err instanceof WorkFailed ? err.cause : err, timedOut: false }
  } finally {
    clearTimeout(timer)
    fence.close()
  }
}

/** A cancel request the server has not taken by then is given up on; the statement_timeout still ends it. */
const CANCEL_TIMEOUT_MS = 2000

async function withTimeout(promise: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!promise) return
  let timer: NodeJS.Timeout | undefined
  await Promise.race([promise.catch(() => {}), new Promise((resolve) => (timer = setTimeout(resolve, ms)))])
  clearTimeout(timer)
}

export class SavepointTimeoutError extends Error {
  override readonly name = 'SavepointTimeoutError'
  constructor(timeoutMs: number) {
    super(`did not finish within ${timeoutMs} ms; its statements were cancelled and its writes rolled back`)
  }
}

/** The work's own failure, carried through postgres.js's savepoint (which rolls back and rethrows). */
class WorkFailed extends Error {
  constructor(cause: unknown) {
    super('savepoint work failed', { cause })
  }
}

/**
 * Guards a postgres.js transaction scope: tracks the statements issued through it and refuses new
 * ones once closed. Drizzle's postgres.js session issues statements with `unsafe` and nests
 * transactions with `savepoint`, so those are what the wrapper intercepts.
 */
class Fence {
  closed = false
  private readonly running = new Set<PendingQuery>()
  private readonly settledAll: Promise<void>[] = []
  private onClose: (() => void)[] = []

  close(): void {
    if (this.closed) return
    this.closed = true
    for (const listener of this.onClose) listener()
    this.onClose = []
  }

  /** Resolves when every statement issued so far has settled. */
  async settled(): Promise<void> {
    await Promise.all(this.settledAll)
  }

  /**
   * Cancels the statements still running on the server, and waits for them to settle. postgres.js
   * sends each cancel request on a connection of its own, never one of the pool's: when every pooled
   * connection is a transaction waiting on its own stuck statement, a cancel that needed the pool
   * would wait for them, and they for it. A queued query is just dropped.
   */
  async cancelRunning(): Promise<void> {
    await Promise.all(
      [...this.running].map(async (query) => {
        // Resolves once the server has taken the request: the statement then fails, or, if it had
        // just finished, the backend is idle and ignores it, so nothing later on the connection is hit.
        const cancelled = (query as PendingQuery & { canceller?: (q: unknown) => Promise<void> }).canceller?.(query)
        await withTimeout(cancelled, CANCEL_TIMEOUT_MS)
      }),
    )
    await this.settled()
  }

  wrap(scope: postgres.TransactionSql): postgres.TransactionSql {
    const fence = this
    return new Proxy(scope, {
      apply() {
        // Tagged-template queries: drizzle never issues them; refuse rather than let one through unfenced.
        throw new Error('a fenced transaction runs statements through drizzle only')
      },
      get(target, property, receiver) {
        if (property === 'unsafe') {
          return (...args: Parameters<postgres.TransactionSql['unsafe']>) => {
            if (fence.closed) throw new SavepointClosedError()
            return fence.track(target.unsafe(...args) as PendingQuery)
          }
        }
        if (property === 'savepoint') {
          return (fn: (inner: postgres.TransactionSql) => unknown) => {
            if (fence.closed) throw new SavepointClosedError()
            // The nested scope ends (without a statement) when the fence closes, so postgres.js never
            // issues its `rollback to` after the outer savepoint has rolled back or the transaction ended.
            return target.savepoint((inner) =>
              Promise.race([Promise.resolve(fn(fence.wrap(inner))), fence.whenClosed()]),
            )
          }
        }
        return Reflect.get(target, property, receiver)
      },
    })
  }

  private whenClosed(): Promise<undefined> {
    return this.closed ? Promise.resolve(undefined) : new Promise((resolve) => this.onClose.push(() => resolve(undefined)))
  }

  private track(query: PendingQuery): PendingQuery {
    this.running.add(query)
    this.settledAll.push(
      // `then`, not `finally`: the derived promise must not reject unobserved.
      query.then(
        () => void this.running.delete(query),
        () => void this.running.delete(query),
      ),
    )
    return query
  }
}

type TxSession = ConstructorParameters<typeof PostgresJsTransaction>[1]

interface DrizzleInternals {
  session: { client: postgres.TransactionSql; options: ConstructorParameters<typeof PostgresJsSession>[3] }
  dialect: ConstructorParameters<typeof PostgresJsTransaction>[0]
  schema: RelationalSchemaConfig<TablesRelationalConfig> | undefined
}

/**
 * The postgres.js transaction under a drizzle transaction, and what a drizzle transaction is built
 * from: drizzle keeps them as internal fields (drizzle-orm 0.45). savepoint.test.ts fails if that changes.
 */
function drizzleInternals(tx: Executor): DrizzleInternals {
  const internals = tx as unknown as Partial<DrizzleInternals>
  const client = internals.session?.client as Partial<postgres.TransactionSql> | undefined
  if (!internals.session || !internals.dialect || typeof client?.savepoint !== 'function') {
    throw new TypeError('runInSavepoint needs a drizzle postgres.js transaction')
  }
  return internals as unknown as DrizzleInternals
}
