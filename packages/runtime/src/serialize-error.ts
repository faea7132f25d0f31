import { inspect } from 'node:util'

/** The longest message or stack a log line carries: a processor may throw a megabyte of text. */
const MAX_LENGTH = 8000
/** Causes followed, at most. */
const MAX_DEPTH = 5

/**
 * Properties never logged: a failed query's statement and parameters (drizzle's DrizzleQueryError,
 * postgres.js's `parameters`), and PostgreSQL's `detail` and `where`, which quote row values. They
 * carry order contents (customer ids, items) and would repeat them on every 503 during an outage.
 */
const WITHHELD = new Set(['query', 'params', 'parameters', 'detail', 'where', 'internal_query', 'raw'])

/**
 * pino's `err` serializer for every service: type, message, stack, cause chain and the scalar fields
 * (`code`, `severity`, `constraint_name`...), with queries and their parameters withheld and long
 * text cut. It never throws, whatever was thrown (null, a string, a frozen or hostile object): a
 * log line must not be what breaks the code that writes it.
 */
export function serializeError(value: unknown, depth = 0): Record<string, unknown> {
  try {
    if (!(value instanceof Error)) return { type: kindOf(value), message: cut(textOf(value)) }
    const withheld = 'query' in value && 'params' in value
    const message = withheld ? 'failed query (its statement and parameters are not logged)' : String(value.message)
    const name = String(value.name)
    const stack = String(value.stack ?? '')
    // The stack's first line repeats the message: rebuild it from the (maybe withheld) message.
    const frames = stack.indexOf('\n    at ')
    const out: Record<string, unknown> = {
      type: typeof value.constructor?.name === 'string' ? value.constructor.name : name,
      message: cut(message),
      stack: cut(`${name}: ${message}${frames >= 0 ? stack.slice(frames) : ''}`),
    }
    for (const key of Object.keys(value)) {
      if (WITHHELD.has(key) || key in out || key === 'cause' || key === 'errors') continue
      const field = (value as unknown as Record<string, unknown>)[key]
      if (typeof field === 'string') out[key] = cut(field)
      else if (typeof field === 'number' || typeof field === 'boolean') out[key] = field
    }
    if (depth < MAX_DEPTH && value.cause !== undefined) out.cause = serializeError(value.cause, depth + 1)
    if (depth < MAX_DEPTH && value instanceof AggregateError && Array.isArray(value.errors)) {
      out.errors = value.errors.slice(0, 10).map((inner: unknown) => serializeError(inner, depth + 1))
    }
    return out
  } catch {
    return { type: 'Error', message: '(an error that could not be read)' }
  }
}

function kindOf(value: unknown): string {
  if (value === null) return 'null'
  return typeof value === 'object' ? 'thrown object' : `thrown ${typeof value}`
}

function textOf(value: unknown): string {
  if (typeof value === 'string') return value
  // inspect copes with null prototypes, cycles and symbols, and invokes no getters.
  return inspect(value, { depth: 2, breakLength: Number.POSITIVE_INFINITY, maxStringLength: MAX_LENGTH })
}

function cut(text: string): string {
  return text.length > MAX_LENGTH ? `${text.slice(0, MAX_LENGTH - 1)}…` : text
}
