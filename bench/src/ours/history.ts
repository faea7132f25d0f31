import { DEFAULT_SCHEMA } from '@postgres-queue/db'
import postgres from 'postgres'
import { orderColumns } from './columns.js'

/**
 * Puts `rows` scheduled orders in the table, due tomorrow and of a higher priority than the
 * preload: a delayed backlog that a claim walking the index in priority order would step over
 * before every due order. Plain SQL, for the same reason as loadHistory.
 */
export async function loadDelayedBacklog(url: string, rows: number): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connection: { search_path: DEFAULT_SCHEMA } })
  try {
    await sql`
      insert into orders (${orderColumns(sql, 'customerId', 'currency', 'items', 'totalCents', 'status', 'priority', 'runAt')})
      select 'delayed-' || (g % 1000), 'EUR', '[{"sku":"SKU-1","quantity":2,"unitPriceCents":1250}]'::jsonb, 2500,
             'scheduled', 10, now() + interval '1 day'
      from generate_series(1, ${rows}::int) g`
    await sql.unsafe('vacuum analyze orders')
  } finally {
    await sql.end()
  }
}

/**
 * Puts `rows` completed orders in the table, as months of finished work would leave it, then
 * VACUUM ANALYZE so the measure sees a settled table rather than a fresh insert's first vacuum.
 * Plain SQL on purpose: a million rows through insertOrders would take minutes of the budget, and
 * no product query inserts completed orders.
 */
export async function loadHistory(url: string, rows: number): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connection: { search_path: DEFAULT_SCHEMA } })
  try {
    await sql`
      insert into orders (${orderColumns(sql, 'customerId', 'currency', 'items', 'totalCents', 'status', 'attempts', 'runAt', 'createdAt', 'updatedAt', 'completedAt', 'completedBy')})
      select 'history-' || (g % 1000), 'EUR', '[{"sku":"SKU-1","quantity":2,"unitPriceCents":1250}]'::jsonb, 2500,
             'completed', 1, t, t, t, t + interval '1 second', 'history'
      from generate_series(1, ${rows}::int) g,
           lateral (select now() - interval '30 days' + g * interval '1 second' as t) ts`
    await sql.unsafe('vacuum analyze orders')
  } finally {
    await sql.end()
  }
}
