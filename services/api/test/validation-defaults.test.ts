import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import t from 'tap'
import type { TSchema } from 'typebox'
import Value from 'typebox/value'
import {
  ListOrdersQuery,
  NewOrderBatchBody,
  NewOrderBody,
  NoBody,
  OrderParams,
  RetryOrdersBody,
} from '../src/schemas/orders.js'
import { ThroughputQuery } from '../src/schemas/queue.js'
import { compileDefaults } from '../src/validation.js'

// The validator fills defaults with compileDefaults, a walk of only the schema's parts that declare
// one, in place of TypeBox's Value.Default over the whole value. It must give what TypeBox gives,
// for every route schema and any JSON a request can carry, valid or not.
const SEED = Number(process.env.FC_SEED ?? 20_261_201)

const schemas: Record<string, TSchema> = {
  NewOrderBody,
  NewOrderBatchBody,
  RetryOrdersBody,
  ListOrdersQuery,
  ThroughputQuery,
  NoBody,
  OrderParams,
}

// Order-shaped values: each field present or not, with a value of the right type or any other.
const anyField = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.integer({ min: -2000, max: 2000 }), fc.constant(undefined))
const orderish = fc.record(
  {
    customerId: anyField,
    currency: anyField,
    items: fc.oneof(
      fc.array(fc.dictionary(fc.constantFrom('sku', 'quantity', 'unitPriceCents', 'x'), anyField)),
      anyField,
    ),
    priority: anyField,
    maxAttempts: anyField,
    runAt: anyField,
    delaySeconds: anyField,
    limit: anyField,
    minutes: anyField,
    order: fc.oneof(fc.constantFrom('asc', 'desc', 'sideways'), anyField),
    ids: anyField,
  },
  { requiredKeys: [] },
)
const value = fc.oneof(
  orderish,
  fc.record({
    orders: fc.oneof(fc.array(fc.oneof(orderish, fc.jsonValue({ maxDepth: 1 })), { maxLength: 5 }), anyField),
  }),
  fc.jsonValue({ maxDepth: 3 }),
)

for (const [name, schema] of Object.entries(schemas)) {
  t.test(`${name}: the same defaults as TypeBox's Value.Default`, async (t) => {
    const fill = compileDefaults(schema)
    // On a difference, fast-check throws with the smallest input it found.
    t.doesNotThrow(
      () =>
        fc.assert(
          fc.property(value, (input) =>
            isDeepStrictEqual(fill(structuredClone(input)), Value.Default(schema, structuredClone(input))),
          ),
          { seed: SEED, numRuns: 400 },
        ),
      '400 inputs, each filled as TypeBox fills it',
    )
  })
}

t.test('a missing default is filled, a given value kept, in every order of a batch', async (t) => {
  const fill = compileDefaults(NewOrderBatchBody)
  const order = { customerId: 'c', currency: 'EUR', items: [{ sku: 'A', quantity: 1, unitPriceCents: 1 }] }
  const filled = fill({ orders: [{ ...order }, { ...order, priority: 7, maxAttempts: 2 }] })
  t.same(filled, {
    orders: [
      { ...order, priority: 0, maxAttempts: 5 },
      { ...order, priority: 7, maxAttempts: 2 },
    ],
  })
})
