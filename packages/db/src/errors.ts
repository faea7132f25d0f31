/**
 * Database errors translated to what callers act on, in this one place. postgres.js raises
 * `PostgresError` (with a SQLSTATE `code`) for errors the server reports and plain errors with a
 * Node or postgres.js `code` for connection failures; drizzle wraps either in `cause`.
 */

// Class 08 (connection exception) is matched by prefix.
const UNAVAILABLE_SQLSTATES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down, recovering)
  '53300', // too_many_connections
])

const UNAVAILABLE_CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
])

/** The SQLSTATE of a server-reported error, if `err` (or what it wraps) is one. */
export function sqlState(err: unknown): string | undefined {
  for (const e of causes(err)) {
    if ('severity' in e && typeof e.code === 'string') return e.code
  }
  return undefined
}

/**
 * SQLSTATEs of a statement that failed for reasons of the moment, not of its data: a lock or
 * statement timeout, a serialization failure, a deadlock, a cancel. Retrying the same work later
 * is right; blaming the orders in it is not.
 */
const TRANSIENT_SQLSTATES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available (lock_timeout)
  '57014', // query_canceled (statement_timeout, a cancel)
])

/** The database could not do it now: unreachable, or a transient failure (TRANSIENT_SQLSTATES). */
export function isTransientDatabaseError(err: unknown): boolean {
  if (isDatabaseUnavailable(err)) return true
  const code = sqlState(err)
  return code !== undefined && TRANSIENT_SQLSTATES.has(code)
}

/** The database cannot be reached or is shutting down: retry later (HTTP 503). */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (const e of causes(err)) {
    const code = typeof e.code === 'string' ? e.code : undefined
    if (code === undefined) continue
    if ('severity' in e) return code.startsWith('08') || UNAVAILABLE_SQLSTATES.has(code)
    if (UNAVAILABLE_CONNECTION_CODES.has(code)) return true
  }
  return false
}

/** `err`'s chain: itself, its causes, and an AggregateError's members (Node's happy-eyeballs connect). */
function* causes(err: unknown, depth = 0): Generator<Error & { code?: unknown }> {
  if (!(err instanceof Error) || depth > 8) return
  yield err
  if (err instanceof AggregateError) for (const inner of err.errors) yield* causes(inner, depth + 1)
  yield* causes(err.cause, depth + 1)
}
