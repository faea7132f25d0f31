/**
 * One graphile-worker process with its published high-throughput settings and a no-op task that
 * records each job's `n`. Started by the bench with DATABASE_URL; stops on SIGTERM.
 */
import { Logger, run } from 'graphile-worker'
import { GRAPHILE_SETTINGS, PEER_QUEUE } from '../settings.js'
import { createRecorder } from '../workers/recorder.js'

const recorder = createRecorder(process.env)
// Per-job logging off, as the performance docs run it: a line per job would be the bottleneck.
const silent = new Logger(() => () => {})

const runner = await run({
  connectionString: process.env.DATABASE_URL,
  noHandleSignals: true,
  preset: { worker: { ...GRAPHILE_SETTINGS, logger: silent } },
  taskList: {
    [PEER_QUEUE]: async (payload) => {
      const { n } = payload as { n: number }
      recorder.started(n)
      recorder.done(n)
    },
  },
})
recorder.ready()

process.once('SIGTERM', () => {
  void runner.stop().finally(() => process.exit(0))
})
