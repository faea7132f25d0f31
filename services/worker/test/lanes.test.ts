import { setTimeout as sleep } from 'node:timers/promises'
import { insertOrders, listOrders } from '@postgres-queue/db'
import { makeOrder, openEffectsDatabase } from '@postgres-queue/testkit'
import t, { type Test } from 'tap'
import { drainInLanes, lanesWanted } from '../src/loop/drainer.js'
import type { BatchResult, ClaimSize } from '../src/modes/mode.js'
import { transactionMode } from '../src/modes/transaction.js'
import type { OrderProcessor } from '../src/processor.js'
import { drainerDeps, running, silentLogger, testConfig } from './helpers.js'

// How many batches a drain runs at once, on a real queue: up to maxLanes alone, one in a fleet when
// processing is the short part of a batch, every lane again when the processor waits.

const ORDERS = 200
const BATCH = 10

/** What a batch reports when its processing is the short part: the database's time varies, this does not. */
const QUICK_TIMING = { processingMs: 1, settlingMs: 5 }

/**
 * Drains ORDERS orders in batches of BATCH with up to 2 lanes; reports the most batches seen at
 * once, and each batch's claim size and timing. `timing` replaces what the batch measured.
 */
async function drain(
  t: Test,
  {
    processor,
    othersAlive,
    timing,
  }: { processor: OrderProcessor; othersAlive: () => number; timing?: BatchResult['timing'] },
) {
  const { db } = await openEffectsDatabase(t)
  await insertOrders(
    db,
    Array.from({ length: ORDERS }, () => makeOrder()),
  )
  const deps = { db, processor, config: testConfig({ batchSize: BATCH }), log: silentLogger, ...running }
  let inFlight = 0
  let most = 0
  const sizes: { size: ClaimSize; prefetched: boolean }[] = []
  const timings: NonNullable<BatchResult['timing']>[] = [] // of full batches
  const mode = transactionMode(deps)
  await drainInLanes(
    drainerDeps(
      {
        async run(size, claimedAhead) {
          sizes.push({ size, prefetched: claimedAhead !== undefined })
          most = Math.max(most, ++inFlight)
          try {
            const result = await mode.run(size, claimedAhead)
            if (result.timing && result.claimed === BATCH) timings.push(result.timing)
            return timing ? { ...result, timing } : result
          } finally {
            inFlight--
          }
        },
      },
      { config: { batchesInFlight: 2, batchSize: BATCH, maxBatchSize: BATCH }, othersAlive },
    ),
    () => {},
  )
  const completed = await listOrders(db, { status: 'completed', limit: ORDERS + 1 })
  t.equal(completed.length, ORDERS, 'every order completed')
  t.ok(
    completed.every((o) => o.attempts === 1),
    'each in one attempt',
  )
  return { most, sizes, timings }
}

const quick: OrderProcessor = async () => {}
const waiting: OrderProcessor = () => sleep(10)

t.test('alone, a deep queue is drained in two lanes', async (t) => {
  t.equal((await drain(t, { processor: quick, othersAlive: () => 0 })).most, 2)
})

t.test('in a fleet, batches that process faster than they settle keep to one lane', async (t) => {
  t.equal((await drain(t, { processor: quick, othersAlive: () => 2, timing: QUICK_TIMING })).most, 1)
})

t.test('in a fleet, a processor that waits longer than the database keeps both lanes', async (t) => {
  const { most, timings } = await drain(t, { processor: waiting, othersAlive: () => 2 })
  t.equal(most, 2)
  t.equal(timings.length, ORDERS / BATCH, 'every full batch reported its timing')
  t.ok(
    timings.every((m) => m.processingMs >= BATCH * 10 - 1),
    'each full batch measured its processing: ten 10 ms waits or more',
  )
  t.ok(
    timings.every((m) => m.settlingMs > 0 && m.settlingMs < m.processingMs),
    'and its settlement, shorter',
  )
})

t.test('a lane the drain no longer wants runs the batch it claimed ahead, claims no more, and ends', async (t) => {
  // Alone until a few batches have run: two lanes open; then another worker appears.
  let processedOrders = 0
  let others = 0
  const { sizes, most } = await drain(t, {
    processor: async () => {
      if (++processedOrders === 3 * BATCH) others = 1
    },
    othersAlive: () => others,
    timing: QUICK_TIMING,
  })
  t.equal(most, 2, 'two lanes ran while alone')
  const retired = sizes.filter((s) => s.size.next === 0)
  t.equal(retired.length, 1, 'one lane retired')
  t.ok(retired[0]?.prefetched, 'with the batch it had claimed ahead')
  const after = sizes.slice(sizes.indexOf(retired[0] as (typeof sizes)[number]) + 1)
  t.ok(after.length > 0 && after.every((s) => s.prefetched), 'one lane drained the rest, each batch claimed ahead')
})

t.test('lanesWanted', async (t) => {
  const batch = (processingMs: number, settlingMs: number): BatchResult => ({
    claimed: 1,
    timing: { processingMs, settlingMs },
  })
  let counted = 0
  const fleetOf = (others: number) => () => {
    counted++
    return others
  }
  t.equal(lanesWanted(batch(1, 5), 4, fleetOf(0)), 4, 'alone: every lane')
  t.equal(lanesWanted(batch(1, 5), 4, fleetOf(1)), 1, 'in a fleet, quick processing: one')
  t.equal(counted, 2)
  t.equal(lanesWanted(batch(5, 5), 4, fleetOf(1)), 4, 'processing as long as settling: every lane')
  t.equal(lanesWanted({ claimed: 1 }, 4, fleetOf(1)), 4, 'no timing (lease mode): every lane')
  t.equal(counted, 2, 'and the fleet is not asked: it would not change the answer')
})
