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

const OrderId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })

const Currency = Type.Enum(Intl.supportedValuesOf('currency'), { description: 'ISO 4217 currency code' })

export const LineItem = Type.Object(
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
  },
  { additionalProperties: false },
)

export const NewOrderBatchBody = Type.Object(
  { orders: Type.Array(NewOrderBody, { minItems: 1, maxItems: MAX_BATCH_ORDERS }) },
  { additionalProperties: false },
)

export const OrderBatchCreated = Type.Object({
  ids: Type.Array(OrderId, { description: 'in submission order' }),
})

const Timestamp = Type.String({ format: 'date-time' })
const NullableTimestamp = Type.Union([Timestamp, Type.Null()])

export const OrderStatus = Type.Enum(orderStatuses)

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

export const ListOrdersQuery = Type.Object(
  {
    status: Type.Optional(OrderStatus),
    // Required in the type because the validator fills the default before checking.
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
    after: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'a nextCursor' })),
  },
  { additionalProperties: false },
)

export const OrderPage = Type.Object({
  orders: Type.Array(Order),
  nextCursor: Type.Union([OrderId, Type.Null()], { description: 'pass as `after` for the next page; null at the end' }),
})
