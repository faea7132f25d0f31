import { countOrdersByStatus, listOrders } from '@postgres-queue/db'
import { openEffectsDatabase, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { auditEffects, insertManyOrders } from '../support/effects.js'
import { startEffectWorker } from '../support/fixtures.js'
import { linesWith, stopService } from '../support/processes.js'
import { holdsWork } from '../support/work.js'

const ORDERS = 30
const BATCH_SIZE = 10
/** Long enough that SIGTERM finds orders in hand and orders not yet started. */
const PROCESS_MS = 200
/** Long, so a lease lapsing cannot be what frees the unstarted orders. */
const LEASE_MS = 30_000

for (const mode of ['transaction', 'lease'] as const) {
  t.test(
    `${mode} mode: SIGTERM mid-batch finishes the orders in hand, leaves the unstarted ones pending and unattempted, and exits 0`,
    async (t) => {
      const { db, url } = await openEffectsDatabase(t, 4)
      const ids = await insertManyOrders(db, ORDERS)
      const worker = startEffectWorker(`${mode}-graceful`, {
        DATABASE_URL: url,
        WORKER_MODE: mode,
        WORKER_BATCH_SIZE: String(BATCH_SIZE),
        // One batch at a time (the default is two), so "the batch in hand" is one batch and the counts
        // below are exact; each of several batches in flight stops the same way.
        WORKER_BATCHES_IN_FLIGHT: '1',
        WORKER_CONCURRENCY: '2',
        WORKER_LEASE_MS: String(LEASE_MS),
        PROCESS_MS: String(PROCESS_MS),
      })
      t.teardown(() => stopService(worker))

      // Past the first batch, and into the next one.
      await worker.waitForLine((line) => line.msg === 'order processed', 60_000)
      await waitFor(() => holdsWork(db, mode, worker.name), {
        message: 'the worker to hold a batch',
        timeoutMs: 10_000,
        intervalMs: 10,
      })
      const signalledAt = performance.now()
      worker.child.kill('SIGTERM')
      const exitCode = await worker.exited
      const stopMs = Math.round(performance.now() - signalledAt)
      const counts = await countOrdersByStatus(db)
      const checkedMs = Math.round(performance.now() - signalledAt)

      t.equal(exitCode, 0, 'the worker exits 0')
      t.equal(counts.processing, 0, 'no order is left processing')
      const processed = linesWith(worker, 'order processed').length
      t.ok(
        counts.completed > BATCH_SIZE && counts.completed < 2 * BATCH_SIZE,
        `the orders in hand were finished and no other was started (${counts.completed} completed)`,
      )
      t.equal(processed, counts.completed, "one 'order processed' line per completed order")
      const pending = await listOrders(db, { status: 'pending', limit: ORDERS })
      t.equal(pending.length, ORDERS - counts.completed, 'every other order is pending')
      t.ok(
        pending.every((o) => o.attempts === 0 && o.lockedBy === null && o.lastError === null),
        'unattempted and unheld, claimable again at once',
      )
      const completedIds = ids.filter((id) => !pending.some((o) => o.id === id))
      t.same(
        await auditEffects(db, completedIds),
        { missing: [], doubled: [], foreign: 0 },
        'each completed order has its one effect',
      )
      t.same(
        await auditEffects(
          db,
          pending.map((o) => o.id),
        ),
        { missing: pending.map((o) => o.id), doubled: [], foreign: 0 },
        'the pending ones have none',
      )
      const released = linesWith(worker, 'released unstarted leases')
      if (mode === 'lease') {
        t.equal(released.length, 1, 'the unstarted leases were released on the way out')
        t.ok(
          checkedMs < LEASE_MS / 10,
          `checked ${checkedMs} ms after SIGTERM, long before a ${LEASE_MS} ms lease could lapse`,
        )
      }
      t.comment(
        `${mode}: SIGTERM to exit ${stopMs} ms; ${counts.completed} completed, ${pending.length} pending` +
          (mode === 'lease' ? `, of which ${String(released[0]?.orders)} released from the batch in hand` : ''),
      )
    },
  )
}
