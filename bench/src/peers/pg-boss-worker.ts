/**
 * One pg-boss process with the settings issue 4 measured it with, and a no-op batch handler that
 * records each job's `n`. Started by the bench with DATABASE_URL; stops on SIGTERM.
 */
import { PgBoss } from 'pg-boss'
import { PEER_QUEUE, PG_BOSS_SETTINGS } from '../settings.js'
import { createRecorder } from '../workers/recorder.js'

const recorder = createRecorder(process.env)

const boss = new PgBoss({ connectionString: process.env.DATABASE_URL!, ...PG_BOSS_SETTINGS.constructor })
boss.on('error', (err) => console.error(err))
await boss.start()
await boss.work<{ n: number }>(PEER_QUEUE, { ...PG_BOSS_SETTINGS.work }, async (jobs) => {
  for (const job of jobs) recorder.started(job.data.n)
  // A batch's jobs make their outside calls at once, as a team's batch handler would.
  await Promise.all(jobs.map(() => recorder.work()))
  for (const job of jobs) recorder.done(job.data.n)
})
recorder.ready()

process.once('SIGTERM', () => {
  void boss.stop({ graceful: true }).finally(() => process.exit(0))
})
