import { LineItemBody, orderStatuses } from '@postgres-queue/db'
import Type, { type Static } from 'typebox'

// What a new order must be lives with the SQL that stores it, in @postgres-queue/db (submission/rules.ts):
// the api validates with it, and the in-transaction submit_order is generated from it.
export { NewOrderBatchBody, NewOrderBody } from '@postgres-queue/db'

const MAX_RETRY_IDS = 1000
const MAX_RETRY_LIMIT = 10_000

const OrderId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })

/**
 * Printable ASCII without the space: a UUID, a ULID or any opaque token fits, and a repeated header
 * (which Node joins with ", ") does not.
 */
export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ pattern: '^[\\x21-\\x7E]{1,255}$' })),
})

export const OrderBatchCreated = Type.Object({
  ids: Type.Array(OrderId, { description: 'in submission order' }),
})

const Timestamp = Type.String({ format: 'date-time' })
const NullableTimestamp = Type.Union([Timestamp, Type.Null()])

const OrderStatus = Type.Enum(orderStatuses)

/** An order as clients see it. */
export const Order = Type.Object({
  id: OrderId,
  customerId: Type.String(),
  currency: Type.String(),
  items: Type.Array(LineItemBody),
  totalCents: Type.Integer({ description: 'computed by the server from the items' }),
  status: OrderStatus,
  priority: Type.Integer(),
  runAt: Timestamp,
  attempts: Type.Integer(),
  maxAttempts: Type.Integer(),
  lastError: Type.Union([Type.String(), Type.Null()]),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  completedAt: NullableTimestamp,
  completedBy: Type.Union([Type.String(), Type.Null()]),
  orderingKey: Type.Union([Type.String(), Type.Null()], {
    description: 'orders with the same key are processed one at a time, in submission order',
  }),
  skippedAt: Type.Union([Timestamp, Type.Null()], {
    description: 'a failed order that no longer holds its key back (POST /orders/{id}/skip)',
  }),
})
export type Order = Static<typeof Order>

export const OrderParams = Type.Object({ id: OrderId }, { additionalProperties: false })

/**
 * The body of an action on one order: none. Fastify hands a missing body to the validator as null;
 * `{}` is accepted too, for clients that always send an object.
 */
export const NoBody = Type.Union([Type.Null(), Type.Object({}, { additionalProperties: false })])

export const RetryOrdersBody = Type.Object(
  {
    ids: Type.Optional(Type.Array(OrderId, { minItems: 1, maxItems: MAX_RETRY_IDS, description: 'only these' })),
    // Required in the type because the validator fills the default before checking.
    limit: Type.Integer({ minimum: 1, maximum: MAX_RETRY_LIMIT, default: 1000, description: 'the most retried' }),
  },
  { additionalProperties: false },
)

export const RetriedOrders = Type.Object({
  retried: Type.Integer({ minimum: 0 }),
  ids: Type.Array(OrderId, {
    description: "the orders sent back (pending; waiting in their key's line if skipped), oldest first",
  }),
})

export const ListOrdersQuery = Type.Object(
  {
    status: Type.Optional(OrderStatus),
    orderingKey: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: "only this key's orders" })),
    // Required in the type because the validator fills the default before checking.
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
    after: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: Number.MAX_SAFE_INTEGER,
        description: 'a nextCursor: the page after it, ids above it (asc) or below it (desc)',
      }),
    ),
    order: Type.Optional(
      Type.Union([Type.Literal('asc'), Type.Literal('desc')], {
        default: 'asc',
        description: 'by id: asc, oldest first; desc, newest first',
      }),
    ),
  },
  { additionalProperties: false },
)

export const OrderPage = Type.Object({
  orders: Type.Array(Order),
  nextCursor: Type.Union([OrderId, Type.Null()], { description: 'pass as `after` for the next page; null at the end' }),
})
