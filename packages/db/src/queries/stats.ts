import { sql } from 'drizzle-orm'
import { type Db, DEFAULT_SCHEMA, type Executor } from '../client.js'
import { type OrderStatus, orderStatuses, orders, orderThroughput } from '../schema.js'

export interface QueueStats {
  /** Orders per status. `completed` is PostgreSQL's estimate (see below); the others are exact. */
  counts: Record<OrderStatus, number>
  /** Age of the oldest due (pending) order: how far behind the workers are. 0 when none waits. */
  lagSeconds: number
  completedLastMinute: number
  completedLast5Minutes: number
  failedLast5Minutes: number
}

/**
 * Queue depth: the orders that are due and wait for a worker (pending means due; those due later
 * are `scheduled`, and those behind an earlier order of their orderingKey `waiting`: a thousand
 * orders behind one blocked key are work for one worker at a time, not for a larger fleet). Its one home: getQueueStats counts `pending` with it (the api's
 * `postgres_queue_depth` gauge, /queue/stats, the dashboard), and KEDA's PostgreSQL scaler runs
 * this very text to size the worker fleet (deploy/kubernetes/worker-scaledobject.yaml; a test holds
 * the two equal). Plain SQL text, so it can go where this package does not; qualified with the
 * queue's schema, since the scaler's session has no search_path set for it.
 */
export function queueDepthQuery(schema: string = DEFAULT_SCHEMA): string {
  return `select count(*) from ${schema}.orders where status = 'pending'`
}

/** Rows a never-analyzed table is counted up to, instead of estimated. */
const EXACT_COUNT_LIMIT = 100_000

/** getQueueStats's one statement, exported so a test can EXPLAIN exactly what runs. */
export const queueStatsStatement = (schema: string = DEFAULT_SCHEMA) => sql`
    select
      (select count(*) from ${orders} where status = 'scheduled')::int as scheduled,
      (select count(*) from ${orders} where status = 'waiting')::int as waiting,
      (${sql.raw(queueDepthQuery(schema))})::int as pending,
      (select count(*) from ${orders} where status = 'processing')::int as processing,
      (select count(*) from ${orders} where status = 'failed')::int as failed,
      (select count(*) from ${orders} where status = 'cancelled')::int as cancelled,
      (select (case
         -- Never vacuumed or analyzed (a new table): count, up to a bound.
         when reltuples < 0 or relpages = 0 then (select count(*) from (select from ${orders} limit ${EXACT_COUNT_LIMIT}) as few)
         -- The planner's own estimate: the density autovacuum last saw, times the table's size now,
         -- so the figure follows the table as it grows rather than waiting for the next analyze.
         else reltuples / relpages * (pg_relation_size(oid) / current_setting('block_size')::int) end)::bigint
       from pg_class where oid = ${`${schema}.orders`}::regclass) as estimated_rows,
      (select extract(epoch from now() - min(run_at)) from ${orders} where status = 'pending') as lag_seconds,
      (select coalesce(sum(completed), 0) from ${orderThroughput} where bucket >= now() - interval '1 minute')::int
        as completed_last_minute,
      (select coalesce(sum(completed), 0) from ${orderThroughput} where bucket >= now() - interval '5 minutes')::int
        as completed_last_5_minutes,
      (select coalesce(sum(failed), 0) from ${orderThroughput} where bucket >= now() - interval '5 minutes')::int
        as failed_last_5_minutes`

/**
 * The queue at a glance, cheap however many finished orders the table holds: every exact count
 * reads one status's range of orders_status_id_idx (which holds every order but the completed
 * ones), and throughput comes from the workers' 5-second buckets. Counting completed
 * orders exactly would read every one of them, so that figure is estimated: the planner's estimate
 * of the table's rows (pg_class, scaled to the table's current size; counted exactly on a table
 * never analyzed) minus the exact counts, and never below the last 5 minutes' completions.
 */
export async function getQueueStats(db: Db): Promise<QueueStats> {
  const [row] = await db.execute<Record<string, number | string | null>>(queueStatsStatement(db.$queueSchema))
  const n = (key: string) => Number(row?.[key] ?? 0)
  const exact = orderStatuses.reduce((sum, status) => (status === 'completed' ? sum : sum + n(status)), 0)
  const counts = Object.fromEntries(orderStatuses.map((s) => [s, n(s)])) as Record<OrderStatus, number>
  // Never fewer than the completions the workers reported in the last 5 minutes: those orders are
  // surely still there (retention keeps a day at least), so the estimate cannot read below them.
  counts.completed = Math.max(0, n('estimated_rows') - exact, n('completed_last_5_minutes'))
  return {
    counts,
    lagSeconds: Math.max(0, n('lag_seconds')),
    completedLastMinute: n('completed_last_minute'),
    completedLast5Minutes: n('completed_last_5_minutes'),
    failedLast5Minutes: n('failed_last_5_minutes'),
  }
}

export interface ThroughputPoint {
  at: Date
  completed: number
  failed: number
}

/** Completions and failures per 5-second bucket over the last `minutes`, summed over the fleet, oldest first. */
export async function getThroughputHistory(db: Executor, { minutes }: { minutes: number }): Promise<ThroughputPoint[]> {
  const rows = await db.execute<{ bucket: string; completed: number; failed: number }>(sql`
    select bucket, sum(completed)::int as completed, sum(failed)::int as failed
    from ${orderThroughput}
    where bucket >= now() - ${minutes} * interval '1 minute'
    group by bucket order by bucket`)
  return rows.map((r) => ({ at: new Date(r.bucket), completed: r.completed, failed: r.failed }))
}
