import { setTimeout as sleep } from 'node:timers/promises'
import type { Order } from '@postgres-queue/db'
import t from 'tap'
import type { ProcessContext } from '../src/processor.js'
import { runProcessor } from '../src/run-processor.js'
import { capturingLogger, silentLogger } from './helpers.js'

// runProcessor is plain JavaScript around the processor call (no database), so these drive it
// directly: the batch tests cover it again end to end.
const order = { id: 42 } as Order
const options = (overrides: Partial<Parameters<typeof runProcessor>[2]> = {}) => ({
  workerId: 'w-1',
  attempt: 2,
  timeoutMs: 1000,
  stop: new AbortController().signal,
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
      await sleep(150)
      late = ctx.signal
    },
    order,
    options({ timeoutMs: 50 }),
  )
  t.equal(result.ok, false)
  await sleep(150)
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
    options({ stop: stop.signal }),
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
