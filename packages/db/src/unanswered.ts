import type { Db } from './client.js'

// A connection can stop answering without closing: a failover that moves the server's address, a
// NAT or firewall that forgets the flow. No RST arrives, the socket stays open, and a statement
// waits until the kernel gives up on it, 15 minutes later with Linux's defaults. The server's own
// bounds (statement_timeout, idle_in_transaction_session_timeout) cannot answer over a connection
// that carries nothing, so the services watch their own calls: `watchForStalls`.

/** Each Db's watched calls that have not settled yet: when each was made (performance.now()). */
const pendingCalls = new WeakMap<Db, Set<{ since: number }>>()

/** `call`, counted as unanswered until it settles. */
export async function watched<T>(db: Db, call: Promise<T>): Promise<T> {
  let calls = pendingCalls.get(db)
  if (calls === undefined) {
    calls = new Set()
    pendingCalls.set(db, calls)
  }
  const entry = { since: performance.now() }
  calls.add(entry)
  try {
    return await call
  } finally {
    calls.delete(entry)
  }
}

/** When the oldest watched call still unanswered was made (performance.now()), if there is one. */
export function oldestUnansweredCall(db: Db): number | undefined {
  let oldest: number | undefined
  for (const { since } of pendingCalls.get(db) ?? []) if (oldest === undefined || since < oldest) oldest = since
  return oldest
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
