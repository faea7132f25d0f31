import { randomInt } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { countOrdersByStatus, type Db, sql } from '@postgres-queue/db'
import type { WorkerConfig } from '@postgres-queue/worker'
import { linesWith, type ServiceProcess } from './processes.js'

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

export interface KillLoop {
  /** The workers, one per slot; a killed one is replaced in its slot by `start(slot)`. */
  fleet: ServiceProcess[]
  start: (slot: number) => ServiceProcess
  mode: WorkerConfig['mode']
  /** Orders that must all complete. */
  total: number
  deadlineMs: number
  /** No more kills after this many. */
  maxKills?: number
  /** What the failure says when the deadline passes, besides the counts. */
  explainTimeout?: () => Promise<unknown>
}

/**
 * SIGKILLs a random worker every 0.7-1.3 s, replacing it, until every order is completed; throws
 * past the deadline. It kills only while the whole fleet is up, so the others keep draining while
 * the replacement starts: on a fixed beat regardless, start-ups outlasted the beat, no worker stayed
 * up long enough to finish a batch, and the test measured start-ups instead of crashes.
 */
export async function killWhileDraining(
  db: Db,
  loop: KillLoop,
): Promise<{ kills: number; midBatchKills: number; drainedMs: number }> {
  const { fleet, start, mode, total, deadlineMs, maxKills = Infinity } = loop
  const started = performance.now()
  let kills = 0
  let midBatchKills = 0
  for (let counts = await countOrdersByStatus(db); counts.completed < total; counts = await countOrdersByStatus(db)) {
    if (performance.now() - started > deadlineMs) {
      const more = await loop.explainTimeout?.()
      throw new Error(`not drained within ${deadlineMs} ms (${kills} kills): ${JSON.stringify({ counts, more })}`)
    }
    await sleep(randomInt(700, 1300))
    if (kills >= maxKills || !fleet.every((w) => linesWith(w, 'worker started').length > 0)) continue
    const victim = fleet[randomInt(fleet.length)]!
    if (await holdsWork(db, mode, victim.name)) midBatchKills += 1
    victim.child.kill('SIGKILL')
    await victim.exited
    kills += 1
    const slot = fleet.indexOf(victim)
    fleet[slot] = start(slot + 1)
  }
  return { kills, midBatchKills, drainedMs: Math.round(performance.now() - started) }
}
