import { setTimeout as sleep } from 'node:timers/promises'
import { countOrdersByStatus, type Db, sql } from '@postgres-queue/db'
import { openEffectsDatabase, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { auditEffects, insertManyOrders } from '../support/effects.js'
import { startEffectWorker } from '../support/fixtures.js'
import { linesWith, type ServiceProcess, stopService } from '../support/processes.js'

const ORDERS = 40
const LEASE_MS = 1000
/** Slow enough that the paused worker's batch (10 orders, 2 at a time) outlasts several heartbeats. */
const PROCESS_MS = 300
const LAPSED = 'lease lost; the order is left to its new holder'
const LOST = 'lease lost to another worker'

t.test(
  'lease mode: a worker paused past its lease, then resumed, completes nothing another worker took over',
  async (t) => {
    t.setTimeout(90_000)
    const { db, url } = await openEffectsDatabase(t, 4)
    const ids = await insertManyOrders(db, ORDERS)
    const env = {
      DATABASE_URL: url,
      WORKER_MODE: 'lease',
      WORKER_LEASE_MS: String(LEASE_MS),
      WORKER_BATCH_SIZE: '10',
      WORKER_CONCURRENCY: '2',
    }
    const workers: ServiceProcess[] = []
    t.teardown(() => Promise.all(workers.map((w) => stopService(w))))
    const paused = startEffectWorker('paused', { ...env, PROCESS_MS: String(PROCESS_MS) })
    workers.push(paused)

    // Alone, it leases its first batch at once; freeze it right then, with orders in hand.
    await waitFor(async () => (await heldBy(db, 'paused')).length > 0, {
      message: 'the paused worker to hold orders',
      timeoutMs: 60_000,
      intervalMs: 10,
    })
    paused.child.kill('SIGSTOP')
    const pausedAt = performance.now()
    const held = await heldBy(db, 'paused')

    // Its heartbeats stop, its leases lapse, and the other worker takes those orders over.
    const taker = startEffectWorker('taker', env)
    workers.push(taker)
    await waitFor(async () => (await completedBy(db, held)).every((by) => by === 'taker'), {
      message: 'the taker to complete every order the paused worker held',
      timeoutMs: 60_000,
    })
    await sleep(Math.max(0, 3 * LEASE_MS - (performance.now() - pausedAt)))
    const pausedMs = Math.round(performance.now() - pausedAt)
    paused.child.kill('SIGCONT')

    // Resumed, its next heartbeat finds every lease taken over: the orders it was running are
    // aborted and left to their new holder, the ones still waiting are not started at all.
    await waitFor(
      async () =>
        held.every((id) => linesWith(paused, LOST).some((l) => l.orderId === id)) &&
        linesWith(paused, LAPSED).length > 0,
      {
        message: "the resumed worker to log each held order's lost lease, and a lapsed one",
        timeoutMs: 30_000,
      },
    )
    const lost = linesWith(paused, LOST)
    t.comment(
      `paused for ${pausedMs} ms (lease ${LEASE_MS} ms) holding ${held.length} orders; on resuming it logged ` +
        `${lost.length} '${LOST}' and ${linesWith(paused, LAPSED).length} '${LAPSED}'`,
    )
    t.ok(held.length > 0, 'the worker was paused holding orders')
    t.ok(lost.length > 0, 'heartbeats after the pause found the leases taken over, and aborted those orders')
    t.same(
      linesWith(paused, 'order processed').filter((l) => held.includes(l.orderId as number)),
      [],
      'the resumed worker completed none of the orders taken over',
    )
    t.same(
      await completedBy(db, held),
      held.map(() => 'taker'),
      'the taker completed every order the paused worker held',
    )

    await waitFor(async () => (await countOrdersByStatus(db)).completed === ORDERS, {
      message: 'every order completed',
      timeoutMs: 30_000,
      intervalMs: 100,
    })
    const audit = await auditEffects(db, ids)
    t.same(
      audit,
      { missing: [], doubled: [], foreign: 0 },
      "exactly one effect row per order, each by the order's completer",
    )
    t.same(
      await Promise.all(workers.map((w) => stopService(w))),
      [0, 0],
      'both workers stop cleanly, the resumed one too',
    )
  },
)

/** The orders `workerId` holds a lease on right now. */
async function heldBy(db: Db, workerId: string): Promise<number[]> {
  const rows = await db.execute<{ id: string }>(sql`
    select id from orders where locked_by = ${workerId} and status = 'processing' order by id`)
  return rows.map((r) => Number(r.id))
}

/** completed_by of each of `ids`, in order (null while not completed). */
async function completedBy(db: Db, ids: readonly number[]): Promise<(string | null)[]> {
  const rows = await db.execute<{ id: string; completed_by: string | null }>(sql`
    select id, completed_by from orders where id = any(${sql.param(ids)}::bigint[]) order by id`)
  return rows.map((r) => r.completed_by)
}
