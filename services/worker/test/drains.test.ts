import t from 'tap'
import type { BatchResult } from '../src/batch.js'
import { createDrainer, type DrainerOptions } from '../src/drains.js'
import { capturingLogger } from './helpers.js'

// The coalescer alone, no database: each batch is a step the test decides, and a batch that claims
// less than a full batch ends the pass, so one batch is one pass here.

const unavailable = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })

function drainerWith(runBatch: () => Promise<BatchResult>, overrides: Partial<DrainerOptions> = {}) {
  const { log, lines } = capturingLogger()
  const draining = new AbortController()
  const forced = new AbortController()
  const events: string[] = []
  const drainer = createDrainer({
    maxLanes: 1,
    othersAlive: () => 0,
    batchSize: 10,
    maxBatchSize: 10,
    runBatch,
    log,
    draining: draining.signal,
    forced: forced.signal,
    onBatch: () => events.push('batch'),
    onRecovered: () => events.push('recovered'),
    ...overrides,
  })
  const said = (msg: string) => lines.filter((line) => line.msg === msg).length
  return { drainer, draining, forced, events, said }
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
  const { drainer, draining } = drainerWith(() => (++batches === 1 ? held.batch() : Promise.resolve({ claimed: 0 })))
  const first = drainer.drain()
  await held.started
  void drainer.drain()
  draining.abort()
  held.release({ claimed: 10 }) // a full batch: without the stop, the lane would claim again
  await first
  t.equal(batches, 1, 'no batch after the one in hand, and no second pass')
})

t.test('an outage is said once, and its end once, with onRecovered after the batch', async (t) => {
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
  const { drainer, forced, said } = drainerWith(() =>
    held.batch().then(() => Promise.reject(new Error('the batch was rolled back'))),
  )
  const drain = drainer.drain()
  await held.started
  forced.abort(new Error('worker stopped'))
  held.release()
  await t.resolves(drain)
  t.equal(said('drain failed; retrying on the next tick'), 0, 'the rollback is not reported as a failure')
})
