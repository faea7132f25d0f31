import { sql } from 'drizzle-orm'
import { DEFAULT_SCHEMA, SCHEMA_NAME } from '../client.js'
import { sqlState } from '../errors.js'
import { IDEMPOTENCY_KEY_REUSED, SUBMISSION_REFUSED } from '../submission/sql.js'

// Submission inside a team's own transaction: the rows of its own tables and the order it queues
// commit together or not at all, and the workers are woken by that commit. The SQL functions
// (submit_order, submit_orders: submission/sql.ts) do the work, under the api's rules and keys;
// these helpers only call them on whatever the team's transaction is.

/** A transaction, or a connection, of the team's own: postgres.js, node-postgres or drizzle. */
export type Transaction = PostgresJs | NodePostgres | Drizzle

/** postgres.js: `sql`, the `tx` of `sql.begin`, a reserved connection. */
interface PostgresJs {
  // biome-ignore lint/suspicious/noExplicitAny: postgres.js types its parameters by its own serializers
  unsafe(query: string, params: any[]): PromiseLike<readonly Record<string, unknown>[]>
}
/** node-postgres: a Client, a PoolClient (inside BEGIN ... COMMIT), a Pool. */
interface NodePostgres {
  query(text: string, values: unknown[]): PromiseLike<{ rows: Record<string, unknown>[] }>
}
/** drizzle, on any driver: a database or a transaction. */
interface Drizzle {
  execute(query: ReturnType<typeof sql>): PromiseLike<unknown>
}

export interface SubmitOptions {
  /** Stores the submission once under this key: the api's Idempotency-Keys, shared with it. */
  idempotencyKey?: string
  /** The queue's schema (DATABASE_SCHEMA); default postgres_queue. */
  schema?: string
}

/** An order that breaks a rule of POST /orders: nothing was stored. The message names the rule. */
export class OrderRefusedError extends Error {
  override readonly name = 'OrderRefusedError'
}

/** The Idempotency-Key was used for another request: nothing was stored. */
export class IdempotencyKeyReusedError extends Error {
  override readonly name = 'IdempotencyKeyReusedError'
}

/**
 * Queues one order (the JSON POST /orders takes) in `tx`, the caller's own transaction, and returns
 * its id. It is stored, and the workers are woken, when `tx` commits; a rollback leaves nothing.
 * With `idempotencyKey`, a repeat of the same order returns the id stored first.
 *
 * ```ts
 * await sql.begin(async (tx) => {
 *   await tx`insert into invoices ${tx(invoice)}`
 *   await submitOrder(tx, { customerId: 'c-42', currency: 'EUR', items: [{ sku: 'A', quantity: 1, unitPriceCents: 100 }] })
 * })
 * ```
 */
export async function submitOrder(tx: Transaction, order: object, options: SubmitOptions = {}): Promise<number> {
  const [id] = await call(tx, 'submit_order', order, options)
  return id as number
}

/** Queues up to 1,000 orders in `tx`, whole or not at all; their ids, in order. As submitOrder. */
export function submitOrders(
  tx: Transaction,
  orders: readonly object[],
  options: SubmitOptions = {},
): Promise<number[]> {
  return call(tx, 'submit_orders', orders, options)
}

async function call(
  tx: Transaction,
  name: 'submit_order' | 'submit_orders',
  body: unknown,
  { idempotencyKey = null, schema = DEFAULT_SCHEMA }: { idempotencyKey?: string | null; schema?: string },
): Promise<number[]> {
  if (!SCHEMA_NAME.test(schema)) throw new RangeError(`schema ${JSON.stringify(schema)} is not a plain identifier`)
  const fn = `${schema}.${name}`
  const json = JSON.stringify(body) ?? null
  try {
    // unnest: one row per id for either function, read the same way from every driver. The body is
    // text, cast in SQL: a driver that knows jsonb parameters (postgres.js) would encode it again.
    const rows = await run(
      tx,
      `select unnest(array[${fn}($1::text::jsonb, $2)]::bigint[]) as id`,
      [json, idempotencyKey],
      () => sql`select unnest(array[${sql.raw(fn)}(${json}::text::jsonb, ${idempotencyKey})]::bigint[]) as id`,
    )
    return rows.map((row) => Number(row.id))
  } catch (err) {
    throw translate(err)
  }
}

/** `text` with `params` on a postgres.js or node-postgres handle; `query()` on a drizzle one. */
async function run(
  tx: Transaction,
  text: string,
  params: unknown[],
  query: () => ReturnType<typeof sql>,
): Promise<readonly Record<string, unknown>[]> {
  if ('unsafe' in tx && typeof tx.unsafe === 'function') return tx.unsafe(text, params)
  if ('query' in tx && typeof tx.query === 'function') return (await tx.query(text, params)).rows
  if ('execute' in tx && typeof tx.execute === 'function') {
    const result = await tx.execute(query())
    return Array.isArray(result) ? result : (result as { rows: Record<string, unknown>[] }).rows
  }
  throw new TypeError(
    'submitOrder takes a postgres.js sql or transaction, a node-postgres client, or a drizzle database',
  )
}

function translate(err: unknown): unknown {
  const state = sqlState(err)
  const message = (err instanceof Error && (err.cause instanceof Error ? err.cause : err).message) || String(err)
  if (state === SUBMISSION_REFUSED) return new OrderRefusedError(message, { cause: err })
  if (state === IDEMPOTENCY_KEY_REUSED) return new IdempotencyKeyReusedError(message, { cause: err })
  return err
}
