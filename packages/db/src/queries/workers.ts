import { getTableColumns, sql } from 'drizzle-orm'
import type { Executor } from '../client.js'
import { orderThroughput, type WorkerRow, workers } from '../schema.js'

/** The width of the throughput buckets the heartbeats fill (order_throughput). */
export const THROUGHPUT_BUCKET_SECONDS = 5
/** Heartbeats a worker may miss before it counts as gone: one late beat (a slow database, a pause) is not a death. */
export const MISSED_HEARTBEATS_BEFORE_GONE = 3

const BUCKET = sql.raw(`interval '${THROUGHPUT_BUCKET_SECONDS} seconds'`)
const bucketOf = (instant: ReturnType<typeof sql>) => sql`date_bin(${BUCKET}, ${instant}, timestamptz '2000-01-01')`

/** How long a worker may stay silent and still count as alive: its own heartbeat interval, times the misses allowed. */
const missedHeartbeats = sql`${MISSED_HEARTBEATS_BEFORE_GONE} * ${workers.heartbeatMs} * interval '1 millisecond'`
/** The `alive` state of listWorkers, as a predicate. */
const alive = sql`${workers.stoppedAt} is null and ${workers.lastSeenAt} >= now() - ${missedHeartbeats}`

export interface WorkerIdentity {
  id: string
  host: string
  pid: number
  mode: string
  /** How often it heartbeats (WORKER_HEARTBEAT_MS). */
  heartbeatMs: number
}

/**
 * Registers a starting worker (or a restarted one under the same id): counts from zero.
 *
 * Transition: (none) | stopped | gone -> alive.
 */
export async function registerWorker(db: Executor, worker: WorkerIdentity): Promise<void> {
  await db
    .insert(workers)
    .values(worker)
    .onConflictDoUpdate({
      target: workers.id,
      set: {
        host: worker.host,
        pid: worker.pid,
        mode: worker.mode,
        heartbeatMs: worker.heartbeatMs,
        startedAt: sql`now()`,
        lastSeenAt: sql`now()`,
        stoppedAt: null,
        processed: 0,
        failed: 0,
      },
    })
}

export interface Heartbeat extends WorkerIdentity {
  /** Totals since the worker started. */
  processed: number
  failed: number
  /** Since the previous heartbeat, added to the current throughput bucket. */
  completedSince: number
  failedSince: number
}

/**
 * One statement: the worker is seen now with its totals, and its recent work lands in the current
 * bucket. A worker whose row was forgotten (retention drops workers silent for an hour, e.g. across
 * a long pause) is registered again.
 */
export async function recordHeartbeat(db: Executor, beat: Heartbeat): Promise<void> {
  await db.execute(sql`
    with seen as (
      insert into ${workers} (id, host, pid, mode, heartbeat_ms, processed, failed)
      values (${beat.id}, ${beat.host}, ${beat.pid}, ${beat.mode}, ${beat.heartbeatMs}, ${beat.processed}, ${beat.failed})
      on conflict (id) do update set
        last_seen_at = now(), processed = excluded.processed, failed = excluded.failed, stopped_at = null,
        heartbeat_ms = excluded.heartbeat_ms
    )
    insert into ${orderThroughput} (bucket, worker_id, completed, failed)
    select ${bucketOf(sql`now()`)}, ${beat.id}, ${beat.completedSince}, ${beat.failedSince}
    where ${beat.completedSince} > 0 or ${beat.failedSince} > 0
    on conflict (bucket, worker_id) do update set
      completed = ${orderThroughput.completed} + excluded.completed,
      failed = ${orderThroughput.failed} + excluded.failed`)
}

/**
 * How many workers other than `id` run in `mode` and are alive (as listWorkers decides): a worker
 * sizes its drains by it (services/worker/src/loop/drainer.ts, lanesWanted).
 */
export async function countOtherWorkersAlive(
  db: Executor,
  { id, mode }: { id: string; mode: string },
): Promise<number> {
  const [row] = await db.execute<{ alive: number }>(sql`
    select count(*)::int as alive from ${workers}
    where ${workers.id} <> ${id} and ${workers.mode} = ${mode} and ${alive}`)
  return row?.alive ?? 0
}

/** A graceful stop: the worker is shown as stopped rather than gone silent. */
export async function markWorkerStopped(db: Executor, id: string): Promise<void> {
  await db.execute(sql`update ${workers} set stopped_at = now(), last_seen_at = now() where id = ${id}`)
}

export type WorkerState = 'alive' | 'stopped' | 'gone'
export type FleetWorker = WorkerRow & { state: WorkerState }

/**
 * Every registered worker, newest first; `gone` once it has missed MISSED_HEARTBEATS_BEFORE_GONE of
 * its own heartbeats (each worker records its interval), decided by the database's clock.
 */
export async function listWorkers(db: Executor): Promise<FleetWorker[]> {
  return db
    .select({
      ...getTableColumns(workers),
      state: sql<WorkerState>`case
        when ${workers.stoppedAt} is not null then 'stopped'
        when ${workers.lastSeenAt} < now() - ${missedHeartbeats} then 'gone'
        else 'alive' end`,
    })
    .from(workers)
    .orderBy(sql`${workers.startedAt} desc`)
}

/**
 * Maintenance: forgets workers silent for `olderThanMs` and throughput buckets older than
 * `keepThroughputMs`. Returns how many workers were removed.
 */
export async function deleteStaleWorkers(
  db: Executor,
  { olderThanMs, keepThroughputMs }: { olderThanMs: number; keepThroughputMs: number },
): Promise<number> {
  await db.execute(
    sql`delete from ${orderThroughput} where bucket < now() - ${keepThroughputMs} * interval '1 millisecond'`,
  )
  const rows = await db.execute(
    sql`delete from ${workers} where last_seen_at < now() - ${olderThanMs} * interval '1 millisecond' returning id`,
  )
  return rows.length
}
