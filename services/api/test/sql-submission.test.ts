import {
  cancelOrder,
  getOrder,
  IdempotencyKeyReusedError,
  type Order,
  OrderRefusedError,
  sqlState,
  submitOrder,
  submitOrders,
} from '@postgres-queue/db'
import { makeOrder } from '@postgres-queue/testkit'
import fc from 'fast-check'
import t from 'tap'
import { startApi } from './helpers.js'
import { body, isValidOrder, validOrder } from './order-bodies.js'

// The SQL submission (submit_order, submit_orders) and POST /orders hold an order to one set of
// rules, generated from one source (@postgres-queue/db, submission/rules.ts): the same bodies are
// accepted and refused by both, and what is accepted is stored alike. FC_SEED=<n> explores others.
const SEED = Number(process.env.FC_SEED ?? 20_261_207)
const RUNS = 300

const { app, db } = await startApi(t)

/** How the database refuses what is not an order: our rules, or the cast to jsonb (NUL, a lone surrogate). */
const REFUSALS = new Set(['22P02', '22P05'])

async function viaSql(submit: () => Promise<number[]>): Promise<{ ids?: number[]; refused?: string }> {
  try {
    return { ids: await submit() }
  } catch (err) {
    if (err instanceof OrderRefusedError) return { refused: err.message }
    if (REFUSALS.has(sqlState(err) ?? '')) return { refused: String(sqlState(err)) }
    throw err
  }
}

/** What must be the same in an order stored over HTTP and one stored in SQL from the same body. */
function stored(order: Order | undefined, sent: { runAt?: unknown }) {
  if (order === undefined) throw new Error('not stored')
  const { customerId, currency, items, totalCents, priority, maxAttempts, orderingKey, status, runAt, createdAt } =
    order
  // An instant asked for is kept as asked; a delay counts from each insert's own time.
  const due =
    status !== 'scheduled' ? 'now' : sent.runAt !== undefined ? runAt.getTime() : runAt.getTime() - createdAt.getTime()
  return { customerId, currency, items, totalCents, priority, maxAttempts, orderingKey, status, due }
}

const same = (a: unknown, b: unknown, what: string) => {
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${what}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`)
}

t.test('one order: accepted and refused alike over HTTP and in SQL, and stored alike', async (t) => {
  const seen = { both: 0, neither: 0 }
  await fc.assert(
    fc.asyncProperty(body, async (generated) => {
      const payload = JSON.stringify(generated) ?? ''
      const sent: unknown = payload === '' ? undefined : JSON.parse(payload)
      const http = await app.inject({
        method: 'POST',
        url: '/orders',
        headers: { 'content-type': 'application/json' },
        payload,
      })
      const viaHttp = http.statusCode === 201 ? await getOrder(db, http.json().id) : undefined
      // The SQL twin would wait behind the HTTP one if they share an orderingKey: cancel that first.
      if (viaHttp?.orderingKey) await cancelOrder(db, viaHttp.id)
      const sql = await viaSql(async () => [await db.$client.begin((tx) => submitOrder(tx, sent as object))])
      const accepted = http.statusCode === 201
      if (accepted !== (sql.ids !== undefined)) {
        throw new Error(`HTTP ${http.statusCode} ${http.body.slice(0, 200)}, SQL ${JSON.stringify(sql)}`)
      }
      same(accepted, isValidOrder(sent), 'both agree with the documented rules')
      if (!accepted) {
        seen.neither++
        return
      }
      same(
        stored(viaHttp, sent as object),
        stored(await getOrder(db, sql.ids?.[0] as number), sent as object),
        'stored alike',
      )
      seen.both++
    }),
    { numRuns: RUNS, seed: SEED },
  )
  t.comment(`${RUNS} bodies: ${seen.both} accepted by both, ${seen.neither} refused by both (seed ${SEED})`)
  t.ok(seen.both >= RUNS / 5 && seen.neither >= RUNS / 5, 'enough of each to mean something')
})

t.test('a batch: accepted and refused alike, whole or not at all', async (t) => {
  const batches = fc.array(fc.oneof({ weight: 9, arbitrary: validOrder }, { weight: 1, arbitrary: body }), {
    minLength: 0,
    maxLength: 4,
  })
  await fc.assert(
    fc.asyncProperty(batches, async (orders) => {
      const sent = JSON.parse(JSON.stringify({ orders })) as { orders: object[] }
      const http = await app.inject({ method: 'POST', url: '/orders/batch', payload: sent })
      const sql = await viaSql(() => db.$client.begin((tx) => submitOrders(tx, sent.orders)))
      if ((http.statusCode === 201) !== (sql.ids !== undefined)) {
        throw new Error(`HTTP ${http.statusCode} ${http.body.slice(0, 200)}, SQL ${JSON.stringify(sql)}`)
      }
      if (sql.ids) same(sql.ids.length, sent.orders.length, 'one id per order')
    }),
    { numRuns: RUNS / 5, seed: SEED },
  )
  t.pass('the same batches accepted and refused')
})

t.test('Idempotency-Keys are shared: the same body stores once whichever way it comes', async (t) => {
  const order = { ...makeOrder(), priority: 1 }
  const http = await app.inject({
    method: 'POST',
    url: '/orders',
    headers: { 'idempotency-key': 'shared-1' },
    payload: order,
  })
  t.equal(http.statusCode, 201)
  const again = await db.$client.begin((tx) => submitOrder(tx, order, { idempotencyKey: 'shared-1' }))
  t.equal(again, http.json().id, 'SQL after HTTP: the order HTTP stored')
  await t.rejects(
    db.$client.begin((tx) => submitOrder(tx, { ...order, priority: 2 }, { idempotencyKey: 'shared-1' })),
    IdempotencyKeyReusedError,
    'another body under the key is refused',
  )
  const first = await db.$client.begin((tx) => submitOrder(tx, order, { idempotencyKey: 'shared-2' }))
  const replay = await app.inject({
    method: 'POST',
    url: '/orders',
    headers: { 'idempotency-key': 'shared-2' },
    payload: order,
  })
  t.equal(replay.statusCode, 200, 'HTTP after SQL: a replay')
  t.equal(replay.json().id, first)
  t.equal(replay.headers['idempotent-replayed'], 'true')
})
