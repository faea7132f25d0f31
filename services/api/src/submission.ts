import { createHash } from 'node:crypto'
import { type NewOrder, type NewOrderBody, schedule } from '@postgres-queue/db'
import { invalidBody } from './errors.js'

/**
 * A validated order body as insertOrders takes it, with its schedule checked: an instant, or a
 * delay the insert counts on the database's clock (the api host's may be off). `path` is where the
 * order sits in the request body (`/orders/3` in a batch), for the error.
 */
export function toNewOrder(body: NewOrderBody, path = ''): NewOrder {
  const { runAt, ...order } = body
  const [first, second] = schedule.exclusive
  if (body[first] !== undefined && body[second] !== undefined) {
    throw invalidBody(`${path}/${second}`, `must not be given with ${first}`)
  }
  if (runAt === undefined) return order
  const at = Date.parse(runAt)
  if (!(at >= schedule.earliestRunAt && at <= schedule.latestRunAt)) {
    throw invalidBody(`${path}/runAt`, 'must be an instant from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z')
  }
  return { ...order, runAt: new Date(at) }
}

/**
 * What an Idempotency-Key is bound to: a sha256 of the validated body in canonical JSON, so a retry
 * that spells the same order with other whitespace, key order or an explicit default is the same
 * request. Defaults are part of it: adding a defaulted field to the schema changes every hash, and a
 * client retrying across that deploy would get a 422, so such a change wants a note in its release.
 */
export function requestHash(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex')
}

/** JSON with every object's keys sorted; array order is kept (an order's items are a sequence). */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (typeof value === 'object' && value !== null) {
    const fields = value as Record<string, unknown>
    const members = Object.keys(fields)
      .filter((key) => fields[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(fields[key])}`)
    return `{${members.join(',')}}`
  }
  return JSON.stringify(value)
}
