import { execFile as execFileCb } from 'node:child_process'
import { getEventListeners } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import type { Order } from '@postgres-queue/db'
import { waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { runProcessor } from '../src/modes/run-processor.js'
import type { ProcessContext } from '../src/processor.js'
import { capturingLogger, silentLogger } from './helpers.js'

// runProcessor is plain JavaScript around the processor call (no database), so these drive it
// directly: the batch tests cover it again end to end.
const execFile = promisify(execFileCb)
const order = { id: 42 } as Order
const options = (overrides: Partial<Parameters<typeof runProcessor>[2]> = {}) => ({
  workerId: 'w-1',
  attempt: 2,
  timeoutMs: 1000,
  abandonWork: new AbortController().signal,
  log: silentLogger,
  ...overrides,
})

t.test('the processor gets its context, and its CommitWork comes back', async (t) => {
  const { log, lines } = capturingLogger()
  let seen: ProcessContext | undefined
  const commit = async () => {}
  const result = await runProcessor(
    async (_order, ctx) => {
      seen = ctx
      ctx.log.info('inside')
      return commit
    },
    order,
    options({ log }),
  )
  t.match(result, { ok: true, commit })
  t.match(seen, { workerId: 'w-1', attempt: 2, idempotencyKey: 'order-42' })
  t.equal(seen?.signal.aborted, false, 'a fresh, live signal')
  t.match(lines, [{ orderId: 42, msg: 'inside' }], 'the child logger carries the order id')
})

t.test('a processor past its timeout fails with a timeout, and its signal is aborted', async (t) => {
  let signal: AbortSignal | undefined
  const result = await runProcessor(
    async (_order, ctx) => {
      signal = ctx.signal
      await sleep(5000)
    },
    order,
    options({ timeoutMs: 50 }),
  )
  t.match(result, { ok: false, error: /OrderTimeoutError: order processing timed out after 50 ms/ })
  t.equal(signal?.aborted, true)
})

t.test('a signal first read after the timeout is already aborted', async (t) => {
  let late: AbortSignal | undefined
  const result = await runProcessor(
    async (_order, ctx) => {
      await sleep(150) // work that outlives its 50 ms
      late = ctx.signal
    },
    order,
    options({ timeoutMs: 50 }),
  )
  t.equal(result.ok, false)
  await waitFor(() => late, { message: 'the late work to read its signal' })
  t.equal(late?.aborted, true, 'it does not let late work believe it still has time')
  t.match(late?.reason, { name: 'OrderTimeoutError' })
})

t.test("the worker's forced stop aborts the order in hand", async (t) => {
  const stop = new AbortController()
  const running = runProcessor(
    async (_order, ctx) => {
      await sleep(5000, undefined, { signal: ctx.signal })
    },
    order,
    options({ abandonWork: stop.signal }),
  )
  stop.abort(new Error('forced stop'))
  t.match(await running, { ok: false, error: 'Error: forced stop' })
})

t.test('a thrown non-Error and a long message are kept as bounded text', async (t) => {
  t.match(await runProcessor(() => Promise.reject('plain'), order, options()), { ok: false, error: 'plain' })
  const long = await runProcessor(() => Promise.reject(new Error('x'.repeat(5000))), order, options())
  t.equal(long.ok, false)
  if (!long.ok) t.equal(long.error.length, 2000)
})

t.test('the long-lived signals keep nothing of an order once it is done (no leak per order)', async (t) => {
  // AbortSignal.any([abandonWork, lost]) per order kept a reference in `abandonWork` for every order ever
  // processed: about 40 MB per 600k orders on Node 20. Measured in a process of its own (tap's
  // hooks keep promises of their own), after full collections, beside that very pattern as the
  // control that shows the measure can see a leak.
  const measure = `
    import { runProcessor } from ${JSON.stringify(new URL('../dist/modes/run-processor.js', import.meta.url).href)}
    const log = { child: () => log }
    const abandonWork = new AbortController().signal
    const order = { id: 1 }
    const options = () => ({ workerId: 'w', attempt: 1, timeoutMs: 1000, abandonWork, log })
    const growth = async (run) => {
      for (let i = 0; i < 20000; i++) await run()
      gc()
      const before = process.memoryUsage().heapUsed
      for (let i = 0; i < 200000; i++) await run()
      gc()
      return process.memoryUsage().heapUsed - before
    }
    const ours = await growth(() => runProcessor(async () => {}, order, options()))
    const control = await growth(async () => AbortSignal.any([abandonWork, new AbortController().signal]))
    console.log(JSON.stringify({ ours, control }))`
  const { stdout } = await execFile(process.execPath, ['--expose-gc', '--input-type=module', '-e', measure], {
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  const { ours, control } = JSON.parse(stdout) as { ours: number; control: number }
  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(2)
  t.ok(control > 20 * 1024 * 1024, `the control, AbortSignal.any per order, grew ${mb(control)} MB over 200,000 orders`)
  t.ok(ours < 2 * 1024 * 1024, `runProcessor grew ${mb(ours)} MB over 200,000 orders`)
  const stopSignal = new AbortController().signal
  for (let i = 0; i < 1000; i++) {
    await runProcessor(async () => {}, order, options({ abandonWork: stopSignal }))
  }
  t.equal(getEventListeners(stopSignal, 'abort').length, 1, 'one listener on the stop signal, however many orders')
})
