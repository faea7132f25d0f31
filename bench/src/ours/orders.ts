import {
  closeDb,
  createDb,
  type Db,
  insertOrders,
  listOrders,
  migrateDatabase,
  type NewOrder,
} from '@postgres-queue/db'
import type { BenchContext } from '../context.js'
import type { ExactlyOnce } from '../results.js'

/** The order every measure submits: the body issue 4 gives for POST /orders. */
export const BENCH_ORDER: NewOrder = {
  customerId: 'c-1',
  currency: 'EUR',
  items: [{ sku: 'SKU-1', quantity: 2, unitPriceCents: 1250 }],
}

/** insertOrders per statement when preloading: big enough that the preload is quick. */
const PRELOAD_CHUNK = 5000
/** Rows per listOrders page when verifying. */
const VERIFY_PAGE = 10_000

/** A fresh database with our migrations applied, and a pool on it for the bench's own queries. */
export async function createOurDatabase(ctx: BenchContext, label: string): Promise<{ url: string; db: Db }> {
  const url = await ctx.server.createDatabase(label)
  await migrateDatabase(url)
  return { url, db: createDb(url, { maxConnections: 8, applicationName: 'bench' }) }
}

export async function dropOurDatabase(ctx: BenchContext, url: string, db: Db): Promise<void> {
  await closeDb(db)
  await ctx.server.dropDatabase(url)
}

/**
 * Inserts `count` orders with the product's own insert, spread round-robin over `keys` orderingKeys
 * if any; returns the id before the first.
 */
export async function preloadOrders(db: Db, count: number, keys = 0): Promise<number> {
  let before: number | undefined
  for (let done = 0; done < count; done += PRELOAD_CHUNK) {
    const chunk = Array.from({ length: Math.min(PRELOAD_CHUNK, count - done) }, (_, i) =>
      keys > 0 ? { ...BENCH_ORDER, orderingKey: `key-${(done + i) % keys}` } : BENCH_ORDER,
    )
    const inserted = await insertOrders(db, chunk)
    before ??= inserted[0]!.id - 1
  }
  return before ?? 0
}

/** True when no order is pending or waiting behind its key: every claimed batch has committed. */
export async function nonePending(db: Db): Promise<boolean> {
  for (const status of ['pending', 'waiting'] as const)
    if ((await listOrders(db, { status, limit: 1 })).length > 0) return false
  return true
}

export interface OrdersVerdict {
  exactlyOnce: ExactlyOnce
  count: number
  firstCompletedAt?: Date
  lastCompletedAt?: Date
  perWorker: Record<string, number>
}

/**
 * Reads back every order after `after` with the product's listOrders: each must be completed with
 * attempts = 1 (processed once, never retried), and there must be exactly `expected` of them.
 */
export async function verifyOrders(
  db: Db,
  { after, expected }: { after: number; expected: number },
): Promise<OrdersVerdict> {
  let count = 0
  let first: Date | undefined
  let last: Date | undefined
  const notCompleted = new Map<string, number>()
  let retried = 0
  // Per orderingKey, the last completion seen: ids ascend, so each key's completions must too.
  // Strictly earlier only: a Date keeps milliseconds, and a hot key completes an order every 2 ms.
  const lastOfKey = new Map<string, Date>()
  let outOfOrder = 0
  const perWorker: Record<string, number> = {}
  for (let cursor = after; ; ) {
    const page = await listOrders(db, { after: cursor, limit: VERIFY_PAGE })
    for (const order of page) {
      count += 1
      if (order.status !== 'completed') notCompleted.set(order.status, (notCompleted.get(order.status) ?? 0) + 1)
      else if (order.attempts !== 1) retried += 1
      if (order.completedAt) {
        if (!first || order.completedAt < first) first = order.completedAt
        if (!last || order.completedAt > last) last = order.completedAt
      }
      if (order.orderingKey !== null && order.completedAt) {
        const previous = lastOfKey.get(order.orderingKey)
        if (previous && order.completedAt < previous) outOfOrder += 1
        lastOfKey.set(order.orderingKey, order.completedAt)
      }
      if (order.completedBy) perWorker[order.completedBy] = (perWorker[order.completedBy] ?? 0) + 1
    }
    if (page.length < VERIFY_PAGE) break
    cursor = page.at(-1)!.id
  }
  const problems: string[] = []
  if (count !== expected) problems.push(`${count} orders stored, ${expected} expected`)
  for (const [status, n] of notCompleted) problems.push(`${n} orders ${status}`)
  if (retried) problems.push(`${retried} completed orders with attempts <> 1`)
  if (outOfOrder) problems.push(`${outOfOrder} orders completed before the order before them in their key`)
  return {
    exactlyOnce: {
      ok: problems.length === 0,
      how: 'every order read back: completed, attempts = 1, count as expected, each key in id order',
      problems,
    },
    count,
    firstCompletedAt: first,
    lastCompletedAt: last,
    perWorker,
  }
}

/** When each completed order's completion was written (epoch ms, by id), with the same read-back. */
export async function completionTimes(db: Db): Promise<Map<number, number>> {
  const times = new Map<number, number>()
  for (let cursor = 0; ; ) {
    const page = await listOrders(db, { after: cursor, status: 'completed', limit: VERIFY_PAGE })
    for (const order of page) if (order.completedAt) times.set(order.id, order.completedAt.getTime())
    if (page.length < VERIFY_PAGE) return times
    cursor = page.at(-1)!.id
  }
}

/** Counts stored orders after `after` (enqueue checks), with the same read-back. */
export async function countOrders(db: Db, after = 0): Promise<number> {
  let count = 0
  for (let cursor = after; ; ) {
    const page = await listOrders(db, { after: cursor, limit: VERIFY_PAGE })
    count += page.length
    if (page.length < VERIFY_PAGE) return count
    cursor = page.at(-1)!.id
  }
}
