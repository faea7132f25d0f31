import t from 'tap'
import { createDrainer, type DrainerDeps } from '../src/loop/drainer.js'
import type { BatchResult } from '../src/modes/mode.js'
import { capturingLogger } from './helpers.js'

// The drainer's coalescing alone, no database: each batch is a step the test decides, and a batch
// that claims less than a full batch ends the pass, so one batch is one pass here.

const unavailable = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })

function drainerWith(runBatch: () => Promise<BatchResult>, overrides: Partial<DrainerDeps> = {}) {
  const { log, lines } = capturingLogger()
  const stopClaiming = new AbortController()
  const abandonWork = new AbortController()
  const events: string[] = []
  const drainer = createDrainer({
    // Every batch names a retry, so the test sees each batch that completed (as 'batch').
    mode: { run: async () => ({ ...(await runBatch()), dueAt: new Date(0) }) },
    config: { batchSize: 10, maxBatchSize: 10, batchesInFlight: 1 },
    othersAlive: () => 0,
    log,
    stopClaiming: stopClaiming.signal,
    abandonWork: abandonWork.signal,
    dueAt: () => events.push('batch'),
    recovered: () => events.push('recovered'),
    ...overrides,
  })
  const said = (msg: string) => lines.filter((line) => line.msg === msg).length
  return { drainer, stopClaiming, abandonWork, events, said }
}

/** A batch that waits until the test lets it end. */
function heldBatch() {
  let release: (result: BatchResult) => void = () => {}
  let entered: () => void = () => {}
  const started = new Promise<void>((resolve) => (entered = resolve))
  const batch = () => {
    entered()
    return new Promise<BatchResult>((resolve) => (release = resolve))
  }
  return { batch, started, release: (result: BatchResult = { claimed: 0 }) => release(result) }
}

t.test('a drain with nothing asked meanwhile makes one pass', async (t) => {
  let batches = 0
  const { drainer } = drainerWith(async () => {
    batches += 1
    return { claimed: 0 }
  })
  await drainer.drain()
  t.equal(batches, 1)
  t.equal(drainer.inFlight(), undefined, 'and is no longer in flight')
})

t.test('requests during a drain join it and make it pass exactly once more, however many', async (t) => {
  const held = heldBatch()
  let batches = 0
  const { drainer } = drainerWith(() => (++batches === 1 ? held.batch() : Promise.resolve({ claimed: 0 })))
  const first = drainer.drain()
  await held.started
  const joined = [drainer.drain(), drainer.drain(), drainer.drain()]
  t.ok(
    joined.every((p) => p === first),
    'each request is handed the drain in progress',
  )
  t.equal(drainer.inFlight(), first)
  held.release()
  await first
  t.equal(batches, 2, 'three requests, one more pass')
  await drainer.drain()
  t.equal(batches, 3, 'the next request is a drain of its own')
})

t.test('a graceful stop ends the drain after the batch in hand, requests or not', async (t) => {
  const held = heldBatch()
  let batches = 0
  const { drainer, stopClaiming } = drainerWith(() =>
    ++batches === 1 ? held.batch() : Promise.resolve({ claimed: 0 }),
  )
  const first = drainer.drain()
  await held.started
  void drainer.drain()
  stopClaiming.abort()
  held.release({ claimed: 10 }) // a full batch: without the stop, the lane would claim again
  await first
  t.equal(batches, 1, 'no batch after the one in hand, and no second pass')
})

t.test('an outage is said once, and its end once, with recovered() after the batch', async (t) => {
  let down = true
  const { drainer, events, said } = drainerWith(async () => {
    if (down) throw unavailable()
    return { claimed: 0 }
  })
  await drainer.drain()
  await drainer.drain()
  await drainer.drain()
  t.equal(said('database unavailable; retrying on the next tick'), 1, 'three failed drains, one warning')
  t.same(events, [], 'no batch completed, nothing recovered')
  down = false
  await drainer.drain()
  await drainer.drain()
  t.equal(said('database reachable again'), 1, 'two good drains, one line')
  t.same(events, ['batch', 'recovered', 'batch'], 'recovered once, after the first batch that completed')

  down = true
  await drainer.drain()
  down = false
  await drainer.drain()
  t.equal(said('database unavailable; retrying on the next tick'), 2, 'a second outage is said again')
  t.equal(events.filter((e) => e === 'recovered').length, 2, 'and its end too')
})

t.test('a drain that fails otherwise is logged as an error each time and never rejects', async (t) => {
  const { drainer, events, said } = drainerWith(async () => {
    throw new Error('a bug')
  })
  await t.resolves(drainer.drain())
  await t.resolves(drainer.drain())
  t.equal(said('drain failed; retrying on the next tick'), 2)
  t.equal(said('database unavailable; retrying on the next tick'), 0)
  t.same(events, [], 'not an outage: nothing to recover from')
})

t.test('after a forced stop, the failure it causes is expected and not logged', async (t) => {
  const held = heldBatch()
  const { drainer, abandonWork, said } = drainerWith(() =>
    held.batch().then(() => Promise.reject(new Error('the batch was rolled back'))),
  )
  const drain = drainer.drain()
  await held.started
  abandonWork.abort(new Error('worker stopped'))
  held.release()
  await t.resolves(drain)
  t.equal(said('drain failed; retrying on the next tick'), 0, 'the rollback is not reported as a failure')
})
