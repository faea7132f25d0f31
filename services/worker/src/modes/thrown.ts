import { inspect } from 'node:util'

// A processor is a team's code, and JavaScript lets it throw anything: an Error, a string, null, an
// object without a prototype (String() of it throws), an Error whose getters throw, a 1 MB message
// with NUL bytes from an HTTP body. Whatever it is, the worker must store why the attempt failed
// without throwing: a throw there escaped the batch and failed every order in it, on every try.
// (Logging it safely is the logger's `err` serializer's job: serializeError in the runtime package.)

/** The longest last_error kept: enough for a message and the top of a stack. */
export const MAX_ERROR_LENGTH = 2000

/**
 * Why an attempt failed, as text PostgreSQL stores (no NUL, which `text` cannot hold; at most
 * MAX_ERROR_LENGTH characters, cut on a code point). Never throws.
 */
export function describeError(thrown: unknown): string {
  const reason = safe(() => withoutQuery(thrown), thrown)
  return storable(`${safe(() => errorName(reason), 'Error')}: ${safe(() => errorMessage(reason), '(unreadable)')}`)
}

/**
 * What a failed drizzle query threw, without the query: drizzle wraps the driver's error in one
 * whose message is the statement and every parameter (other orders' data, a CommitWork's rows).
 */
function withoutQuery(thrown: unknown): unknown {
  let reason = thrown
  for (let depth = 0; depth < 5 && reason instanceof Error && 'query' in reason && 'params' in reason; depth++) {
    if (reason.cause === undefined) return new Error('a query failed')
    reason = reason.cause
  }
  return reason
}

function errorName(thrown: unknown): string {
  if (thrown instanceof Error) return String(thrown.name)
  if (thrown === null) return 'null'
  return typeof thrown === 'object' ? 'thrown object' : `thrown ${typeof thrown}`
}

function errorMessage(thrown: unknown): string {
  if (thrown instanceof Error) return String(thrown.message)
  if (typeof thrown === 'string') return thrown
  // inspect copes with null prototypes, cycles and symbols; its getters are not invoked.
  return inspect(thrown, { depth: 2, breakLength: Number.POSITIVE_INFINITY, maxStringLength: MAX_ERROR_LENGTH })
}

/** NUL removed, lone surrogates replaced, at most `max` code points. */
function storable(text: string, max = MAX_ERROR_LENGTH): string {
  // Cut before cleaning: a 1 MB message is not scanned whole.
  const head = text.length > 4 * max ? text.slice(0, 4 * max) : text
  const clean = head.replaceAll('\u0000', '').toWellFormed()
  const codePoints = Array.from(clean)
  return codePoints.length > max ? `${codePoints.slice(0, max - 1).join('')}…` : clean
}

function safe<T, F>(read: () => T, fallback: F): T | F {
  try {
    return read()
  } catch {
    return fallback
  }
}
