import { PgBoss } from 'pg-boss'
import postgres from 'postgres'
import { scripts } from '../processes.js'
import { PEER_QUEUE, PG_BOSS_SETTINGS } from '../settings.js'
import { chunks, jobPayload, type Peer, PRELOAD_CHUNK } from './peer.js'

/**
 * pg-boss on a fresh database: creates its schema and the bench queue (with `notify: true`, as the
 * workers' LISTEN relies on). This instance only submits: supervision and cron are left to the
 * worker processes, so it adds no background load of its own.
 */
export async function openPgBoss(url: string): Promise<Peer> {
  const boss = new PgBoss({ connectionString: url, supervise: false, schedule: false })
  boss.on('error', (err: Error) => console.error(`pg-boss (bench side): ${err.message}`))
  await boss.start()
  await boss.createQueue(PEER_QUEUE, { ...PG_BOSS_SETTINGS.queue })
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  const count = async (where: postgres.PendingQuery<postgres.Row[]>) => {
    const [row] = await sql<
      { n: number }[]
    >`select count(*)::int as n from pgboss.job where name = ${PEER_QUEUE} ${where}`
    return row?.n ?? 0
  }

  return {
    system: 'pg-boss',
    script: scripts.pgBossWorker,
    schema: 'pgboss',
    async preload(total, queues = 0) {
      if (queues) throw new Error('pg-boss: named queues are not part of the bench')
      for (const ns of chunks(total, PRELOAD_CHUNK))
        await boss.insert(
          PEER_QUEUE,
          ns.map((n) => ({ data: jobPayload(n) })),
        )
    },
    async addOne(n) {
      await boss.send(PEER_QUEUE, jobPayload(n))
    },
    async addMany(ns) {
      await boss.insert(
        PEER_QUEUE,
        ns.map((n) => ({ data: jobPayload(n) })),
      )
    },
    remaining: () => count(sql`and state <> 'completed'`),
    stored: () => count(sql``),
    async checkTable(expected) {
      const [row] = await sql<{ total: number; completed: number; retried: number }[]>`
        select count(*)::int as total,
               (count(*) filter (where state = 'completed'))::int as completed,
               (count(*) filter (where retry_count > 0))::int as retried
        from pgboss.job where name = ${PEER_QUEUE}`
      const problems: string[] = []
      if (row?.total !== expected) problems.push(`${row?.total} jobs in pgboss.job, ${expected} expected`)
      if (row?.completed !== expected) problems.push(`${row?.completed} completed, ${expected} expected`)
      if (row?.retried) problems.push(`${row.retried} jobs retried`)
      return problems
    },
    async completionTimes() {
      const rows = await sql<{ n: number; at: number }[]>`
        select (data->>'n')::int as n, extract(epoch from completed_on) * 1000 as at
        from pgboss.job where name = ${PEER_QUEUE} and state = 'completed'`
      return new Map(rows.map((row) => [row.n, Number(row.at)]))
    },
    async close() {
      await boss.stop({ graceful: false, close: true })
      await sql.end()
    },
  }
}
