import { countOrdersByStatus, type Db, getOrder, insertOrders, retryOrders } from '@postgres-queue/db'
import { makeOrder, openEffectsDatabase, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { auditEffects } from '../support/effects.js'
import { startEffectWorker } from '../support/fixtures.js'
import { isRunning, linesWith, type ServiceProcess, stopService } from '../support/processes.js'

const POISON_CUSTOMER = 'poison-customer'
const MAX_ATTEMPTS = 3
/** Two batches of 10; the poison order is in the first. */
const ORDERS = 20
const POISON_POSITION = 4

const baseEnv = {
  WORKER_BATCH_SIZE: '10',
  WORKER_RETRY_BASE_MS: '50',
  WORKER_RETRY_MAX_MS: '100',
  POISON_CUSTOMER,
}

t.setTimeout(240_000)

for (const mode of ['transaction', 'lease'] as const) {
  t.test(
    `${mode} mode: an order whose processor always throws is failed after max_attempts with its error kept, its batch completes, and redrive makes it pending again`,
    async (t) => {
      const { db, url } = await openEffectsDatabase(t, 4)
      const { ids, poisonId } = await insertWithPoison(db)
      const workers: ServiceProcess[] = []
      t.teardown(() => Promise.all(workers.map((w) => stopService(w))))
      const env = { ...baseEnv, DATABASE_URL: url, WORKER_MODE: mode, POISON_BEHAVIOUR: 'throw' }
      const worker = startEffectWorker(`${mode}-poisoned`, env)
      workers.push(worker)
      const started = performance.now()
      await waitFor(async () => (await countOrdersByStatus(db)).failed === 1, {
        message: 'the poison order dead-lettered',
        timeoutMs: 60_000,
        intervalMs: 100,
      })
      t.comment(`${mode}: dead-lettered after ${Math.round(performance.now() - started)} ms (incl. worker start-up)`)

      const poison = await getOrder(db, poisonId)
      t.equal(poison?.status, 'failed', 'the poison order is failed')
      t.equal(poison?.attempts, MAX_ATTEMPTS, 'after exactly max_attempts attempts')
      t.match(poison?.lastError, /poison order of poison-customer/, 'with the last error kept')
      const failures = worker.lines.filter((l) => l.orderId === poisonId).map((l) => [l.attempt, l.msg])
      t.same(
        failures,
        [
          [1, 'order failed; will retry'],
          [2, 'order failed; will retry'],
          [3, 'order failed; dead-lettered'],
        ],
        'each attempt failed alone and was logged',
      )
      const others = ids.filter((id) => id !== poisonId)
      await waitFor(async () => (await countOrdersByStatus(db)).completed === others.length, {
        message: 'every other order completed',
        timeoutMs: 30_000,
        intervalMs: 100,
      })
      const completedFirstTime = await Promise.all(others.map(async (id) => (await getOrder(db, id))?.attempts))
      t.ok(
        completedFirstTime.every((a) => a === 1),
        'the rest of its batch, and the next, completed on their first attempt',
      )
      t.same(
        await auditEffects(db, others),
        { missing: [], doubled: [], foreign: 0 },
        'each of them with one effect row',
      )
      t.same(
        await auditEffects(db, [poisonId]),
        { missing: [poisonId], doubled: [], foreign: 0 },
        'the failed attempts left no effect',
      )
      t.equal(await stopService(worker), 0, 'the worker stops cleanly')

      t.same(await retryOrders(db, { ids: [poisonId], limit: 10 }), [poisonId], 'redrive picks it')
      const redriven = await getOrder(db, poisonId)
      t.match(
        redriven,
        { status: 'pending', attempts: 0, lockedBy: null },
        'redrive makes it pending with its attempts reset',
      )
      t.match(redriven?.lastError, /poison order/, 'its last error kept as history')

      // Once the processor is fixed, the redriven order completes like any other.
      const fixed = startEffectWorker(`${mode}-fixed`, { ...env, POISON_CUSTOMER: '' })
      workers.push(fixed)
      await waitFor(async () => (await getOrder(db, poisonId))?.status === 'completed', {
        message: 'the redriven order completed',
        timeoutMs: 60_000,
      })
      t.same(
        await auditEffects(db, ids),
        { missing: [], doubled: [], foreign: 0 },
        'every order, the redriven one included, has one effect row',
      )
      t.equal(await stopService(fixed), 0, 'the fixed worker stops cleanly')
    },
  )
}

t.test(
  'lease mode: an order whose processor kills the worker is failed after max_attempts claims, and the others complete once',
  async (t) => {
    const { db, url } = await openEffectsDatabase(t, 4)
    const { ids, poisonId } = await insertWithPoison(db)
    const workers: ServiceProcess[] = []
    t.teardown(() => Promise.all(workers.map((w) => stopService(w))))
    const env = {
      ...baseEnv,
      DATABASE_URL: url,
      WORKER_MODE: 'lease',
      WORKER_LEASE_MS: '1000',
      POISON_BEHAVIOUR: 'exit',
    }

    // Restart the worker each time the poison order kills it, as an orchestrator would.
    const started = performance.now()
    const deaths: (number | string)[] = []
    const done = async () => {
      const counts = await countOrdersByStatus(db)
      return counts.failed === 1 && counts.completed === ids.length - 1
    }
    while (!(await done())) {
      if (performance.now() - started > 120_000) throw new Error(`not settled after ${deaths.length} deaths`)
      const worker = startEffectWorker(`lease-w${workers.length + 1}`, env)
      workers.push(worker)
      await waitFor(async () => !isRunning(worker) || (await done()), {
        message: 'the worker to exit or the orders to be final',
        timeoutMs: 60_000,
        intervalMs: 100,
      })
      if (!isRunning(worker)) deaths.push(await worker.exited)
    }
    t.comment(
      `lease: settled after ${Math.round(performance.now() - started)} ms, ${workers.length} worker processes, exits ${JSON.stringify(deaths)}`,
    )

    const poison = await getOrder(db, poisonId)
    t.equal(poison?.status, 'failed', 'the poison order is failed')
    t.equal(poison?.attempts, MAX_ATTEMPTS, 'its attempts are the claims it killed')
    t.same(deaths, [1, 1, 1], 'it killed the worker once per claim, max_attempts times, and then no more')
    t.match(poison?.lastError, /lease expired/, 'last_error says its lease lapsed')
    const survivor = workers.at(-1)!
    t.ok(
      linesWith(survivor, 'lease lapsed on the last attempt; order dead-lettered').some((l) => l.orderId === poisonId),
      'the rescue that found it exhausted dead-lettered it instead of running it again',
    )
    const others = ids.filter((id) => id !== poisonId)
    t.same(
      await auditEffects(db, others),
      { missing: [], doubled: [], foreign: 0 },
      'every other order completed exactly once',
    )
    const attempts = await Promise.all(others.map(async (id) => (await getOrder(db, id))?.attempts ?? 0))
    t.comment(`lease: attempts of the other orders: max ${Math.max(...attempts)} (its batch mates died with it)`)
    t.equal(await stopService(survivor), 0, 'the last worker stops cleanly')
  },
)

/** ORDERS orders, one of which (at POISON_POSITION) is the poison customer's with MAX_ATTEMPTS. */
async function insertWithPoison(db: Db): Promise<{ ids: number[]; poisonId: number }> {
  const orders = Array.from({ length: ORDERS }, (_, i) =>
    i === POISON_POSITION ? makeOrder({ customerId: POISON_CUSTOMER, maxAttempts: MAX_ATTEMPTS }) : makeOrder(),
  )
  const ids = (await insertOrders(db, orders)).map((o) => o.id)
  return { ids, poisonId: ids[POISON_POSITION]! }
}
