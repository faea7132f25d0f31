/**
 * Our real worker loop (`runWorker`, the same call `services/worker/src/main.ts` makes) with a no-op
 * processor that tells the bench when it started on each order: the pickup latency measure needs the
 * processor's start time, which the stock entry point does not expose.
 */
import { runWorker } from '@postgres-queue/worker'
import { createRecorder } from './recorder.js'

const recorder = createRecorder(process.env)

await runWorker(process.env, async (order) => {
  recorder.started(order.id)
  recorder.done(order.id)
})
recorder.ready()
