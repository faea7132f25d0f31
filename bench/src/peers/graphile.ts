import { Logger, makeWorkerUtils } from 'graphile-worker'
import postgres from 'postgres'
import { scripts } from '../processes.js'
import { PEER_QUEUE } from '../settings.js'
import { chunks, jobPayload, type Peer, PRELOAD_CHUNK } from './peer.js'

/** graphile-worker on a fresh database: WorkerUtils migrates its schema and submits jobs. */
export async function openGraphile(url: string): Promise<Peer> {
  const utils = await makeWorkerUtils({ connectionString: url, logger: new Logger(() => () => {}) })
  await utils.migrate()
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  // graphile-worker deletes a job when it completes: what is left is pending, locked or failed.
  const jobsLeft = async () => {
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from graphile_worker._private_jobs`
    return row?.n ?? 0
  }

  return {
    system: 'graphile-worker',
    script: scripts.graphileWorker,
    schema: 'graphile_worker',
    async preload(total, queues = 0) {
      for (const ns of chunks(total, PRELOAD_CHUNK)) {
        await utils.addJobs(
          ns.map((n) => ({
            identifier: PEER_QUEUE,
            payload: jobPayload(n),
            ...(queues ? { queueName: `q-${n % queues}` } : {}),
          })),
        )
      }
    },
    async addOne(n) {
      await utils.addJob(PEER_QUEUE, jobPayload(n))
    },
    async addMany(ns) {
      await utils.addJobs(ns.map((n) => ({ identifier: PEER_QUEUE, payload: jobPayload(n) })))
    },
    remaining: jobsLeft,
    stored: jobsLeft,
    async checkTable() {
      const left = await jobsLeft()
      return left === 0 ? [] : [`${left} jobs left in graphile_worker._private_jobs (failed or still locked)`]
    },
    // It deletes the row in the statement that completes the job: no trace of when is left.
    completionTimes: async () => undefined,
    async close() {
      await utils.release()
      await sql.end()
    },
  }
}
