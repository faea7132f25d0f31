import type { Db } from './client.js'

// A connection can stop answering without closing: a failover that moves the server's address, a
// NAT or firewall that forgets the flow. No RST arrives, the socket stays open, and a statement
// waits until the kernel gives up on it, 15 minutes later with Linux's defaults. The server's own
// bounds (statement_timeout, idle_in_transaction_session_timeout) cannot answer over a connection
// that carries nothing, so the worker watches its own calls (services/worker/src/stall.ts).

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
