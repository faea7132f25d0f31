import { type Db, sql } from '@postgres-queue/db'
import type { WorkerConfig } from '@postgres-queue/worker'

/**
 * Whether the worker holds orders right now, as the database sees it. In transaction mode, one of
 * its sessions sits idle inside a transaction: only a batch does that, while its processor runs
 * (any single statement, a fleet heartbeat say, has an xact_start too, so that is no sign). In
 * lease mode, it holds leases.
 */
export async function holdsWork(db: Db, mode: WorkerConfig['mode'], workerId: string): Promise<boolean> {
  const [row] =
    mode === 'transaction'
      ? await db.execute<{ n: number }>(sql`select count(*)::int as n from pg_stat_activity
          where application_name = ${`postgres-queue worker ${workerId}`} and state = 'idle in transaction'`)
      : await db.execute<{ n: number }>(sql`select count(*)::int as n from orders
          where locked_by = ${workerId} and status = 'processing'`)
  return (row?.n ?? 0) > 0
}
