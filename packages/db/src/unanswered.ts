import type { Db } from './client.js'

// A connection can stop answering without closing: a failover that moves the server's address, a
// NAT or firewall that forgets the flow. No RST arrives, the socket stays open, and a statement
// waits until the kernel gives up on it, 15 minutes later with Linux's defaults. The server's own
// bounds (statement_timeout, idle_in_transaction_session_timeout) cannot answer over a connection
// that carries nothing, so the services watch their own calls: `watchForStalls`.

/** A call to the database that has not settled yet, and when it was made (performance.now()). */
interface Call {
  since: number
}

/** The calls of each pool (its postgres.js client, as watchClient wrapped it) not settled yet. */
export type PendingCalls = Set<Call>

/** Each Db's pending calls: createDb registers them. */
const pendingCalls = new WeakMap<Db, PendingCalls>()

export function registerPendingCalls(db: Db, calls: PendingCalls): void {
  pendingCalls.set(db, calls)
}

/** When the oldest call still unanswered was made (performance.now()), if there is one. */
export function oldestUnansweredCall(db: Db): number | undefined {
  let oldest: number | undefined
  for (const { since } of pendingCalls.get(db) ?? []) if (oldest === undefined || since < oldest) oldest = since
  return oldest
}

/** Counts a call from now until `end()`. */
function startCall(calls: PendingCalls): { end(): void } {
  const call = { since: performance.now() }
  calls.add(call)
  return { end: () => void calls.delete(call) }
}

function watchSettled<T>(calls: PendingCalls, promise: Promise<T>): Promise<T> {
  const call = startCall(calls)
  return promise.finally(call.end)
}

/** A postgres.js query: a lazy promise that runs when first awaited (`handle`), and settles with its answer. */
type LazyQuery = Promise<unknown> & { handle(): unknown; executed: boolean }

const isQuery = (value: unknown): value is LazyQuery =>
  value instanceof Promise && typeof (value as Partial<LazyQuery>).handle === 'function'

/** Counts `query` from when it is run until it settles, without running it sooner than its caller would. */
function watchQuery<T>(query: T, calls: PendingCalls): T {
  if (!isQuery(query)) return query // a helper (sql(identifier)), not a statement
  const run = query.handle
  query.handle = function (this: LazyQuery) {
    if (!this.executed) {
      const call = startCall(calls)
      // Promise's own then: the query's then() would run it; this only listens, and never rejects.
      Promise.prototype.then.call(this, call.end, call.end)
    }
    return run.call(this)
  }
  return query
}

/**
 * The same postgres.js client, whose every call to the server counts as unanswered until it
 * settles: statements (tagged or `unsafe`), waits for a reserved connection, LISTEN and NOTIFY, and
 * everything run on the handles it gives out (a reserved connection, a transaction, a savepoint):
 * a transaction's BEGIN until its callback starts, and its COMMIT once the callback has returned.
 * At the driver, not at each query function, so a new query cannot forget to be watched.
 */
export function watchClient<T extends object>(client: T, calls: PendingCalls): T {
  return new Proxy(client, {
    apply(target, thisArg, args) {
      return watchQuery(Reflect.apply(target as (...a: unknown[]) => unknown, thisArg, args), calls)
    },
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target)
      if (typeof value !== 'function') return value
      const call = (...args: unknown[]) => Reflect.apply(value, target, args)
      switch (property) {
        case 'unsafe':
        case 'file':
          return (...args: unknown[]) => watchQuery(call(...args), calls)
        case 'reserve':
          return async (...args: unknown[]) =>
            watchClient((await watchSettled(calls, call(...args) as Promise<object>)) as object, calls)
        case 'listen':
        case 'notify':
          return (...args: unknown[]) => watchSettled(calls, call(...args) as Promise<unknown>)
        case 'begin':
        case 'savepoint':
          return (...args: unknown[]) => watchScope(calls, args, call)
        default:
          return value
      }
    },
  })
}

/** `begin([options,] fn)` or `savepoint([name,] fn)`, with its opening and closing statements counted. */
function watchScope(calls: PendingCalls, args: unknown[], call: (...args: unknown[]) => unknown): Promise<unknown> {
  const fn = args.pop() as (scoped: object) => unknown
  const opening = startCall(calls)
  let closing: { end(): void } | undefined
  const scoped = async (sql: object) => {
    opening.end()
    try {
      return await fn(watchClient(sql, calls))
    } finally {
      closing = startCall(calls)
    }
  }
  return (call(...args, scoped) as Promise<unknown>).finally(() => {
    opening.end()
    closing?.end()
  })
}

/** How often the watch looks. */
const CHECK_EVERY_MS = 1000
/** How long past the server's own bound a call may go unanswered before its connection counts as gone. */
const STALL_MARGIN_MS = 10_000

/** The stall limit for a pool whose statements the server ends after `statementTimeoutMs`. */
export const stallLimitMs = (statementTimeoutMs: number) => statementTimeoutMs + STALL_MARGIN_MS

/** What a service logs when its watch reports a stall. */
export const STALLED_CONNECTION =
  "a database call has had no answer past the server's own bound: its connection is gone without closing"

export interface StallWatch {
  stop(): void
}

/**
 * Calls `onStalled` once if a watched call to `db` goes unanswered for `limitMs`. The server answers
 * every statement within its statement_timeout, even if only to say it cancelled it; one still
 * unanswered past that and a margin is on a connection that stopped carrying anything, and what
 * waits on it will wait for the kernel's TCP timeout (about 15 minutes) unless the process goes.
 *
 * Time is counted in the watch's own ticks, not read off the clock: a process that was frozen (a
 * paused container, a suspended VM) would otherwise find every call late on waking, before its
 * socket's pending answers had been read.
 */
export function watchForStalls({
  db,
  limitMs,
  onStalled,
}: {
  db: Db
  limitMs: number
  onStalled: (stall: { unansweredMs: number; limitMs: number }) => void
}): StallWatch {
  let watching: number | undefined
  let ticks = 0
  const timer = setInterval(() => {
    const oldest = oldestUnansweredCall(db)
    if (oldest !== watching) {
      watching = oldest
      ticks = 0
      return
    }
    if (oldest === undefined || ++ticks * CHECK_EVERY_MS < limitMs) return
    clearInterval(timer)
    onStalled({ unansweredMs: Math.round(performance.now() - oldest), limitMs })
  }, CHECK_EVERY_MS)
  timer.unref()
  return { stop: () => clearInterval(timer) }
}
