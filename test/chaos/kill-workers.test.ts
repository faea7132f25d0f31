import { countOrdersByStatus, sql } from '@postgres-queue/db'
import { openEffectsDatabase } from '@postgres-queue/testkit'
import t from 'tap'
import { auditEffects, insertManyOrders, ordersPerWorker } from '../support/effects.js'
import { startEffectWorker } from '../support/fixtures.js'
import { isRunning, linesWith, type ServiceProcess, stopService } from '../support/processes.js'
import { killWhileDraining } from '../support/work.js'

const ORDERS = 10_000
const WORKERS = 3
/** Short, so a killed lease-mode worker's orders come back within the test. */
const LEASE_MS = 2000
/**
 * Time in hand per order, so the fleet waits more than it computes. At full speed it saturates both
 * cores, and a replacement then takes 5-12 s to start instead of 2 s (measured): only 3-4 kills fit
 * in a drain, against 6-9 with these. Lease mode processes 10 orders of a batch at once
 * (WORKER_CONCURRENCY), so it needs ten times as long per order for the same pace.
 */
const PROCESS_MS = { transaction: 8, lease: 80 }
/** A drain that has not finished by then is stuck, not slow. */
const DRAIN_DEADLINE_MS = 150_000

// Two drains of 10,000 orders with kills: 35-55 s each on this 2-core machine (measured).
t.setTimeout(2 * DRAIN_DEADLINE_MS + 60_000)

for (const mode of ['transaction', 'lease'] as const) {
  t.test(
    `${mode} mode: 3 workers, SIGKILLed at random and replaced, complete 10,000 orders with exactly one effect each`,
    async (t) => {
      t.setTimeout(DRAIN_DEADLINE_MS + 60_000)
      const { db, url } = await openEffectsDatabase(t, 4)
      // A lease-mode kill costs every order the victim held an attempt (counted at claim); the default
      // of 5 could dead-letter an order that was merely unlucky five times. Dead-lettering is the poison
      // test's subject; here every order must complete.
      const ids = await insertManyOrders(db, ORDERS, { maxAttempts: 50 })

      const everStarted: ServiceProcess[] = []
      t.teardown(() => Promise.all(everStarted.map((w) => stopService(w))))
      let incarnations = 0
      const start = (slot: number) => {
        incarnations += 1
        const worker = startEffectWorker(`${mode}-w${slot}-${incarnations}`, {
          DATABASE_URL: url,
          WORKER_MODE: mode,
          WORKER_LEASE_MS: String(LEASE_MS),
          PROCESS_MS: String(PROCESS_MS[mode]),
        })
        everStarted.push(worker)
        return worker
      }
      const fleet = Array.from({ length: WORKERS }, (_, slot) => start(slot + 1))

      const { kills, midBatchKills, drainedMs } = await killWhileDraining(db, {
        fleet,
        start,
        mode,
        total: ORDERS,
        deadlineMs: DRAIN_DEADLINE_MS,
      })

      const counts = await countOrdersByStatus(db)
      t.same(
        counts,
        { scheduled: 0, waiting: 0, pending: 0, processing: 0, completed: ORDERS, failed: 0, cancelled: 0 },
        'every order is completed',
      )
      const audit = await auditEffects(db, ids)
      t.same(audit.missing, [], 'no completed order lacks its effect row')
      t.same(audit.doubled, [], 'no order has two effect rows')
      t.equal(audit.foreign, 0, "every effect row is the completing worker's")
      // A second witness: one 'order processed' line per completion. A SIGKILL can swallow a line the
      // worker had not flushed yet, so only doubles are checked.
      const processedLines = new Map<number, number>()
      for (const worker of everStarted) {
        for (const line of linesWith(worker, 'order processed')) {
          processedLines.set(line.orderId as number, (processedLines.get(line.orderId as number) ?? 0) + 1)
        }
      }
      t.same(
        [...processedLines].filter(([, n]) => n > 1),
        [],
        'no order was logged as processed twice',
      )

      const [attempts] = await db.execute<{ max: number; retried: number }>(sql`
      select max(attempts)::int as max, count(*) filter (where attempts > 1)::int as retried from orders`)
      t.comment(
        `${mode}: ${ORDERS} orders drained in ${drainedMs} ms by ${incarnations} worker processes; ` +
          `${kills} SIGKILLs, ${midBatchKills} of them mid-batch; ` +
          `orders attempted more than once: ${attempts?.retried}, most attempts: ${attempts?.max}`,
      )
      t.comment(`${mode}: orders per worker: ${await ordersPerWorker(db)}`)
      const startUps = everStarted.flatMap((w) =>
        linesWith(w, 'worker started').map((l) => Date.parse(l.time as string) - w.spawnedAt),
      )
      t.comment(`${mode}: worker start-up (spawn to 'worker started'): ${startUps.sort((a, b) => a - b).join(', ')} ms`)
      t.ok(kills >= 3, 'the workers were killed repeatedly while they drained')
      t.ok(midBatchKills >= 1, 'kills landed while a worker held orders')

      // A replacement still loading its modules has no SIGTERM handler yet.
      await Promise.all(fleet.map((w) => w.waitForLine((line) => line.msg === 'worker started')))
      const survivors = fleet.filter(isRunning)
      t.same(
        await Promise.all(survivors.map((w) => stopService(w))),
        survivors.map(() => 0),
        'the survivors stop cleanly',
      )
    },
  )
}
