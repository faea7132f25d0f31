/**
 * Our real worker loop (`runWorker`, the same call `services/worker/src/main.ts` makes) with a
 * processor that does nothing (or waits BENCH_PROCESSOR_WAIT_MS, as an outside call would) and tells
 * the bench when it started on each order: the pickup and steady-state measures need the
 * processor's start time, which the stock entry point does not expose.
 */
import { runWorker } from '@postgres-queue/worker'
import { createRecorder } from './recorder.js'

const recorder = createRecorder(process.env)

await runWorker(process.env, async (order) => {
  recorder.started(order.id)
  await recorder.work()
  recorder.done(order.id)
})
recorder.ready()
