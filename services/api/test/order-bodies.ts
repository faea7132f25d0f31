import fc from 'fast-check'

// Order bodies for property tests, and an independent check of which are valid, written here from
// the documented rules, not from the schema: the api (and the SQL submission) must agree with it.

// ---- The independent check -------------------------------------------------------------------

const ORDER_FIELDS = new Set([
  'customerId',
  'currency',
  'items',
  'priority',
  'runAt',
  'delaySeconds',
  'maxAttempts',
  'orderingKey',
])
const ITEM_FIELDS = ['quantity', 'sku', 'unitPriceCents']
// The runtime's ISO 4217 list is data; how the code is checked (exact, upper case) is this file's.
const CURRENCIES = new Set(Intl.supportedValuesOf('currency'))

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
const isRecord = (v: unknown): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isIntegerIn = (v: unknown, min: number, max: number) =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max

/** 1..max code points, none a control character (C0, DEL, C1) or half a surrogate pair. */
function isText(v: unknown, max: number): boolean {
  if (typeof v !== 'string') return false
  let length = 0
  for (const char of v) {
    const cp = char.codePointAt(0)!
    if (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0xd800 && cp <= 0xdfff)) return false
    length++
  }
  return length >= 1 && length <= max
}

const RFC3339 = /^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?(?:[Zz]|([+-])(\d\d):(\d\d))$/
const EARLIEST = Date.UTC(1970, 0, 1)
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

/** An RFC 3339 date-time naming a real instant (no leap second) from 1970 through 9999. */
function isRunAt(v: unknown): boolean {
  const match = typeof v === 'string' ? RFC3339.exec(v) : null
  if (!match) return false
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0] = match.slice(1, 7).map(Number)
  const [fraction, sign, offsetHours, offsetMinutes] = match.slice(7)
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return false
  if (sign && (Number(offsetHours) > 23 || Number(offsetMinutes) > 59)) return false
  // Day 0 of the next month is the last of this one; setUTCFullYear, unlike Date.UTC, keeps years < 100.
  const date = new Date(0)
  date.setUTCFullYear(year, month, 0)
  if (day < 1 || day > date.getUTCDate()) return false
  date.setUTCFullYear(year, month - 1, day)
  date.setUTCHours(hour, minute, second, Number((fraction ?? '.0').slice(1, 4).padEnd(3, '0')))
  const offsetMs = sign ? (sign === '-' ? -1 : 1) * (Number(offsetHours) * 60 + Number(offsetMinutes)) * 60_000 : 0
  const instant = date.getTime() - offsetMs
  return instant >= EARLIEST && instant <= LATEST
}

function isItem(v: unknown): boolean {
  return (
    isRecord(v) &&
    Object.keys(v).sort().join() === ITEM_FIELDS.join() &&
    isText(v.sku, 64) &&
    isIntegerIn(v.quantity, 1, 10_000) &&
    isIntegerIn(v.unitPriceCents, 0, 1_000_000_000)
  )
}

export function isValidOrder(v: unknown): v is Record<string, Json> {
  if (!isRecord(v) || !Object.keys(v).every((key) => ORDER_FIELDS.has(key))) return false
  const { customerId, currency, items, priority, runAt, delaySeconds, maxAttempts, orderingKey } = v
  return (
    isText(customerId, 128) &&
    typeof currency === 'string' &&
    /^[A-Z]{3}$/.test(currency) &&
    CURRENCIES.has(currency) &&
    Array.isArray(items) &&
    items.length >= 1 &&
    items.length <= 100 &&
    items.every(isItem) &&
    (priority === undefined || isIntegerIn(priority, -1000, 1000)) &&
    (runAt === undefined || isRunAt(runAt)) &&
    (delaySeconds === undefined || isIntegerIn(delaySeconds, 0, 31_536_000)) &&
    (runAt === undefined || delaySeconds === undefined) &&
    (maxAttempts === undefined || isIntegerIn(maxAttempts, 1, 100)) &&
    (orderingKey === undefined || isText(orderingKey, 128))
  )
}

// ---- The bodies ------------------------------------------------------------------------------

const text = (maxLength: number) =>
  fc.oneof(
    fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength }),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: maxLength / 4 }),
    // Any code point, astral ones included; the controls among them are the mutations' business.
    fc.string({ unit: 'binary', minLength: 1, maxLength }).filter((s) => isText(s, maxLength)),
    fc.constantFrom("'); drop table orders; --", '1 OR 1=1', 'Zoë 客户 🧾'),
  )

const item = fc.record({
  sku: text(64),
  quantity: fc.integer({ min: 1, max: 10_000 }),
  unitPriceCents: fc.oneof(fc.integer({ min: 0, max: 1_000_000_000 }), fc.constantFrom(0, 1_000_000_000)),
})

const instant = fc.date({ min: new Date(EARLIEST), max: new Date(LATEST), noInvalidDate: true })
/** The instant written with a UTC offset, as clients in other zones would. */
const runAt = fc.oneof(
  instant.map((date) => date.toISOString()),
  fc.tuple(instant, fc.integer({ min: -23 * 60 - 59, max: 23 * 60 + 59 })).map(([date, offset]) => {
    const local = new Date(date.getTime() + offset * 60_000).toISOString().slice(0, -1)
    const abs = Math.abs(offset)
    const hh = String(Math.floor(abs / 60)).padStart(2, '0')
    return `${local}${offset < 0 ? '-' : '+'}${hh}:${String(abs % 60).padStart(2, '0')}`
  }),
)

export const validOrder = fc
  .tuple(
    fc.record(
      {
        customerId: text(128),
        currency: fc.constantFrom('EUR', 'USD', 'JPY', 'GBP', 'CHF', 'BHD'),
        items: fc.oneof(
          { weight: 9, arbitrary: fc.array(item, { minLength: 1, maxLength: 5 }) },
          { weight: 1, arbitrary: fc.array(item, { minLength: 95, maxLength: 100 }) },
        ),
        priority: fc.integer({ min: -1000, max: 1000 }),
        maxAttempts: fc.integer({ min: 1, max: 100 }),
        // A few shared keys, so that orders queue behind each other, and any key at all.
        orderingKey: fc.oneof(fc.constantFrom('customer-1', 'customer-2'), text(128)),
      },
      { requiredKeys: ['customerId', 'currency', 'items'] },
    ),
    fc.oneof(
      fc.constant({}),
      runAt.map((at) => ({ runAt: at })),
      fc.integer({ min: 0, max: 31_536_000 }).map((delay) => ({ delaySeconds: delay })),
    ),
  )
  .map(([order, schedule]): Record<string, unknown> & { items: { sku: string }[] } => ({ ...order, ...schedule }))

/** Anything at all: wrong types, junk, unicode, nesting. */
const junk = fc.anything({ maxDepth: 3, stringUnit: 'binary' })

/** Values just outside each field's rules, where an off-by-one or a missed rule would show. */
const nearMisses: Record<string, unknown[]> = {
  customerId: ['', 'c'.repeat(129), 'c-\u000042', 'c-42\n', '\u001b[31mc', 'c-\u009b42', 'c-\ud800', 42],
  orderingKey: ['', 'k'.repeat(129), 'k-\u000042', 'k-42\n', '\u001b[31mk', 'k-\u009b42', 'k-\ud800', 42, null],
  currency: ['eur', 'ABC', 'EURO', 'EU', '', 978],
  items: [[], 'SKU-1', {}],
  priority: [-1001, 1001, 0.5, '1', null],
  runAt: [
    '2030-12-31T23:59:60Z',
    '0000-01-01T00:00:00Z',
    '1969-12-31T23:59:59Z',
    '9999-12-31T23:59:59-23:59',
    '2030-02-30T00:00:00Z',
    '2030-01-01T00:00:00',
    '2030-01-01 00:00:00Z',
    'tomorrow',
    1_900_000_000_000,
  ],
  delaySeconds: [-1, 31_536_001, 1.5, '60', null],
  maxAttempts: [0, 101, 2.5, '5', null],
  sku: ['', 's'.repeat(65), 'SKU\u0000', 'SKU-\udfff', 7],
  quantity: [0, -1, 10_001, 1.5, '2', null],
  unitPriceCents: [-1, 1_000_000_001, 12.5, 1e12, '1250'],
}
const valueFor = (field: string) =>
  fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...nearMisses[field]!) }, { weight: 1, arbitrary: junk })

const orderField = fc.constantFrom(...ORDER_FIELDS)
const itemField = fc.constantFrom(...ITEM_FIELDS)

/** A valid order with one thing changed: a field set, removed or added, here or in an item. */
const mutatedOrder = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .tuple(validOrder, orderField)
      .chain(([order, field]) => valueFor(field).map((value) => ({ ...order, [field]: value }))),
  },
  {
    weight: 4,
    arbitrary: fc.tuple(validOrder, itemField).chain(([order, field]) =>
      valueFor(field).map((value) => ({
        ...order,
        items: [...order.items.slice(0, -1), { ...order.items.at(-1)!, [field]: value }],
      })),
    ),
  },
  fc.tuple(validOrder, orderField).map(([order, field]) => {
    const { [field]: _removed, ...rest } = order
    return rest
  }),
  fc.tuple(validOrder, fc.string({ maxLength: 12 }), fc.jsonValue()).map(([order, key, value]) => ({
    ...order,
    [key]: value,
  })),
  fc.tuple(validOrder, runAt, fc.integer({ min: 0, max: 100 })).map(([order, at, delay]) => ({
    ...order,
    runAt: at,
    delaySeconds: delay,
  })),
  fc.tuple(validOrder, fc.integer({ min: 1, max: 60 })).map(([order, depth]) => ({
    ...order,
    items: Array.from({ length: depth }).reduce<unknown>((inner) => [inner], order.items),
  })),
  fc.tuple(validOrder, item).map(([order, extra]) => ({
    ...order,
    items: Array.from({ length: 101 }, () => extra),
  })),
)

export const body = fc.oneof(
  { weight: 3, arbitrary: validOrder },
  { weight: 6, arbitrary: mutatedOrder },
  { weight: 1, arbitrary: fc.anything({ maxDepth: 4, stringUnit: 'binary' }) },
)
