import { orderStatuses } from '@postgres-queue/db'
import Type, { type Static } from 'typebox'

// Identifiers are stored as text and inside jsonb. PostgreSQL cannot store NUL in either, and jsonb
// also rejects an unpaired surrogate, so control characters (Cc) and lone surrogates (Cs) are refused
// here, before they can turn into a 500 at insert time. Patterns run with the `u` flag.
const NO_CONTROL_CHARACTERS = '^[^\\p{Cc}\\p{Cs}]+$'

/** Bounds chosen so the largest order's total, 100 x 10 000 x 10^9 = 10^15, stays an exact integer (< 2^53). */
const MAX_ITEMS = 100
const MAX_QUANTITY = 10_000
const MAX_UNIT_PRICE_CENTS = 1_000_000_000

const MAX_BATCH_ORDERS = 1000

/** A year: the longest delay a client may ask for, in seconds. */
const MAX_DELAY_SECONDS = 365 * 24 * 60 * 60

/** Generous for any real retry budget, small enough that a poison order dead-letters in bounded time. */
const MAX_ATTEMPTS = 100

const MAX_RETRY_IDS = 1000
const MAX_RETRY_LIMIT = 10_000

const OrderId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })

const Currency = Type.Enum(Intl.supportedValuesOf('currency'), { description: 'ISO 4217 currency code' })

const LineItem = Type.Object(
  {
    sku: Type.String({ minLength: 1, maxLength: 64, pattern: NO_CONTROL_CHARACTERS }),
    quantity: Type.Integer({ minimum: 1, maximum: MAX_QUANTITY }),
    unitPriceCents: Type.Integer({ minimum: 0, maximum: MAX_UNIT_PRICE_CENTS, description: 'in the minor unit' }),
  },
  { additionalProperties: false },
)

export const NewOrderBody = Type.Object(
  {
    customerId: Type.String({ minLength: 1, maxLength: 128, pattern: NO_CONTROL_CHARACTERS }),
    currency: Currency,
    items: Type.Array(LineItem, { minItems: 1, maxItems: MAX_ITEMS }),
    priority: Type.Optional(
      Type.Integer({ minimum: -1000, maximum: 1000, default: 0, description: 'higher runs first' }),
    ),
    // What a schema cannot say is checked in submission.ts: runAt and delaySeconds exclude each
    // other, and runAt must be an instant both JavaScript and PostgreSQL can hold.
    runAt: Type.Optional(Type.String({ format: 'date-time', description: 'not processed before this instant' })),
    delaySeconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: MAX_DELAY_SECONDS, description: 'not processed for this long' }),
    ),
    maxAttempts: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_ATTEMPTS, default: 5, description: 'tries before it is failed' }),
    ),
  },
  { additionalProperties: false },
)
export type NewOrderBody = Static<typeof NewOrderBody>

/**
 * Printable ASCII without the space: a UUID, a ULID or any opaque token fits, and a repeated header
 * (which Node joins with ", ") does not.
 */
export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ pattern: '^[\\x21-\\x7E]{1,255}$' })),
})

export const NewOrderBatchBody = Type.Object(
  { orders: Type.Array(NewOrderBody, { minItems: 1, maxItems: MAX_BATCH_ORDERS }) },
  { additionalProperties: false },
)

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
  items: Type.Array(LineItem),
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
  ids: Type.Array(OrderId, { description: 'the orders sent back to pending, oldest first' }),
})

export const ListOrdersQuery = Type.Object(
  {
    status: Type.Optional(OrderStatus),
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
