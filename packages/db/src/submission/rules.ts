import Type, { type Static } from 'typebox'

// What an order must be to be accepted, over HTTP (services/api) and in SQL (submit_order, generated
// from these very schemas: submission/sql.ts). One home for every rule: change one here, and the
// migration test tells you to write the SQL functions again (pnpm db:submission).

// Identifiers are stored as text and inside jsonb. PostgreSQL cannot store NUL in either, and jsonb
// also rejects an unpaired surrogate, so control characters (Cc) and lone surrogates (Cs) are refused
// here, before they can turn into a 500 at insert time. Patterns run with the `u` flag.
export const NO_CONTROL_CHARACTERS = '^[^\\p{Cc}\\p{Cs}]+$'

/** Bounds chosen so the largest order's total, 100 x 10 000 x 10^9 = 10^15, stays an exact integer (< 2^53). */
const MAX_ITEMS = 100
const MAX_QUANTITY = 10_000
const MAX_UNIT_PRICE_CENTS = 1_000_000_000

const MAX_BATCH_ORDERS = 1000

/** A year: the longest delay a client may ask for, in seconds. */
const MAX_DELAY_SECONDS = 365 * 24 * 60 * 60

/** Generous for any real retry budget, small enough that a poison order dead-letters in bounded time. */
const MAX_ATTEMPTS = 100

/**
 * ISO 4217 codes, as Node's Intl.supportedValuesOf('currency') listed them (Node 20 and 24 agree),
 * kept as data here: the runtime's list may change with its ICU, and the SQL rules must not.
 */
export const CURRENCY_CODES: readonly string[] = `
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP
GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD
KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO
NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL
SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST
XAF XCD XCG XDR XOF XPF XSU YER ZAR ZMW ZWG ZWL
`
  .trim()
  .split(/\s+/)

const Currency = Type.Enum([...CURRENCY_CODES], { description: 'ISO 4217 currency code' })

export const LineItemBody = Type.Object(
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
    items: Type.Array(LineItemBody, { minItems: 1, maxItems: MAX_ITEMS }),
    priority: Type.Optional(
      Type.Integer({ minimum: -1000, maximum: 1000, default: 0, description: 'higher runs first' }),
    ),
    // What a schema cannot say is in `schedule` below: runAt and delaySeconds exclude each other, and
    // runAt must be an instant both JavaScript and PostgreSQL can hold.
    runAt: Type.Optional(Type.String({ format: 'date-time', description: 'not processed before this instant' })),
    delaySeconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: MAX_DELAY_SECONDS, description: 'not processed for this long' }),
    ),
    maxAttempts: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_ATTEMPTS, default: 5, description: 'tries before it is failed' }),
    ),
    orderingKey: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 128,
        pattern: NO_CONTROL_CHARACTERS,
        description:
          'orders with the same key are processed one at a time, in submission order; a failed one holds the later ones back until it is redriven, cancelled or skipped',
      }),
    ),
  },
  { additionalProperties: false },
)
export type NewOrderBody = Static<typeof NewOrderBody>

export const NewOrderBatchBody = Type.Object(
  { orders: Type.Array(NewOrderBody, { minItems: 1, maxItems: MAX_BATCH_ORDERS }) },
  { additionalProperties: false },
)

/**
 * The rules of an order's schedule that a schema cannot say. The date-time format admits instants
 * JavaScript cannot represent (a leap second, 23:59:60) and ones PostgreSQL refuses (year 0000, or
 * 9999-12-31T23:59:59-23:59, which is year 10000): each would be a 500 at insert time. Within this
 * range both agree, and no real schedule lies outside it.
 */
export const schedule = {
  /** These two fields exclude each other. */
  exclusive: ['runAt', 'delaySeconds'] as const,
  /** runAt, as an instant (to the millisecond), lies within this range. */
  earliestRunAt: Date.UTC(1970, 0, 1),
  latestRunAt: Date.UTC(9999, 11, 31, 23, 59, 59, 999),
}
