import { createTestDatabase } from '@postgres-queue/testkit'
import t from 'tap'
import { closeDb, createDb, getQueueStats, queueStatsStatement, sql } from '../src/index.js'

// What /queue/stats and every /metrics scrape cost on a table full of history. The suite builds
// 100,000 finished rows (2 s); docs/operations.md quotes a run with STATS_COST_ROWS=1000000, which
// takes 20 s to build. The assertions hold the plan, not the clock: a scan of the history would
// read thousands of pages at either size, and a timing bound would flake on a busy machine.
const FINISHED_ROWS = Number(process.env.STATS_COST_ROWS ?? 100_000)
const PENDING_ROWS = Number(process.env.STATS_COST_PENDING ?? 200)
const FAILED_ROWS = 50
const RUNS = 20
/**
 * The lag reads each due pending row once (through the claim index, in run_at order, so about a
 * page each): the cost follows the backlog. The history must add nothing: 100,000 finished rows
 * fill about 2,000 pages, so a plan that touched them would blow well past this.
 */
const MAX_BUFFERS = PENDING_ROWS + FAILED_ROWS + 100

const db = createDb(await createTestDatabase(t), { maxConnections: 1 })
t.teardown(() => closeDb(db))

// Plain SQL, one statement per status: completed over the last week, as retention keeps it.
const ITEMS = `'[{"sku":"SKU-1","quantity":2,"unitPriceCents":1250}]'::jsonb`
await db.execute(
  sql.raw(`insert into orders (customer_id, currency, items, total_cents, status, attempts, run_at, created_at,
    updated_at, completed_at, completed_by)
  select 'c-' || i % 5000, 'EUR', ${ITEMS}, 2500, 'completed', 1, at, at, at, at, 'worker-' || i % 3
  from generate_series(1, ${FINISHED_ROWS}) i, lateral (select now() - (i % 604800) * interval '1 second' as at) t`),
)
await db.execute(
  sql.raw(`insert into orders (customer_id, currency, items, total_cents, run_at)
  select 'c-' || i, 'EUR', ${ITEMS}, 2500, now() - (i % 60) * interval '1 second'
  from generate_series(1, ${PENDING_ROWS}) i`),
)
await db.execute(
  sql.raw(`insert into orders (customer_id, currency, items, total_cents, status, attempts, max_attempts, last_error)
  select 'c-' || i, 'EUR', ${ITEMS}, 2500, 'failed', 5, 5, 'boom' from generate_series(1, ${FAILED_ROWS}) i`),
)
await db.execute(sql`vacuum analyze orders`)

t.test(`getQueueStats stays cheap on ${FINISHED_ROWS.toLocaleString('en')} finished orders`, async (t) => {
  const stats = await getQueueStats(db) // warm: plan cached, pages in shared buffers
  t.match(stats.counts, { pending: PENDING_ROWS, processing: 0, failed: FAILED_ROWS, cancelled: 0 })
  const error = Math.abs(stats.counts.completed - FINISHED_ROWS) / FINISHED_ROWS
  t.ok(error < 0.01, `completed estimated within 1%: ${stats.counts.completed}`)

  const timings: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const started = performance.now()
    await getQueueStats(db)
    timings.push(performance.now() - started)
  }
  timings.sort((a, b) => a - b)
  const median = (timings[RUNS / 2 - 1]! + timings[RUNS / 2]!) / 2
  t.comment(`getQueueStats: median ${median.toFixed(2)} ms of ${RUNS}, max ${timings.at(-1)!.toFixed(2)} ms`)

  const plan = await db.execute<{ 'QUERY PLAN': string }>(
    sql`explain (analyze, buffers, costs off) ${queueStatsStatement(db.$queueSchema)}`,
  )
  const lines = plan.map((row) => row['QUERY PLAN'])
  t.comment(lines.join('\n'))
  t.notOk(
    lines.some((line) => /Seq Scan on orders\b/.test(line)),
    'no sequential scan of orders',
  )
  const topBuffers = /Buffers: shared hit=(\d+)(?: read=(\d+))?/.exec(lines.find((l) => l.includes('Buffers')) ?? '')
  const buffers = Number(topBuffers?.[1] ?? Infinity) + Number(topBuffers?.[2] ?? 0)
  t.ok(buffers < MAX_BUFFERS, `reads ${buffers} buffers: the backlog, not the history`)
})
