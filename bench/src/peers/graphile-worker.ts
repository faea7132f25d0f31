/**
 * One graphile-worker process with its published high-throughput settings and a no-op task that
 * records each job's `n`. Started by the bench with DATABASE_URL; stops on SIGTERM. With
 * SERIAL_QUEUES=1 (jobs in named queues) it runs without the local queue: with one, jobs of a named
 * queue run concurrently, not one at a time (graphile/worker#621, open in 0.18), so a named-queue
 * figure taken with it would not be of serial work.
 */
import { Logger, run } from 'graphile-worker'
import { GRAPHILE_SETTINGS, PEER_QUEUE } from '../settings.js'
import { createRecorder } from '../workers/recorder.js'

const recorder = createRecorder(process.env)
// Per-job logging off, as the performance docs run it: a line per job would be the bottleneck.
const silent = new Logger(() => () => {})
const { localQueue: _batchFetch, ...serialSafe } = GRAPHILE_SETTINGS
const settings = process.env.SERIAL_QUEUES === '1' ? serialSafe : GRAPHILE_SETTINGS

const runner = await run({
  connectionString: process.env.DATABASE_URL,
  noHandleSignals: true,
  preset: { worker: { ...settings, logger: silent } },
  taskList: {
    [PEER_QUEUE]: async (payload) => {
      const { n } = payload as { n: number }
      recorder.started(n)
      await recorder.work()
      recorder.done(n)
    },
  },
})
recorder.ready()

process.once('SIGTERM', () => {
  void runner.stop().finally(() => process.exit(0))
})
