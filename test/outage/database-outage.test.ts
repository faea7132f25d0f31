import { setTimeout as sleep } from 'node:timers/promises'
import { closeDb, createDb, type Db, migrateDatabase, sql } from '@postgres-queue/db'
import { freePort, startCluster } from '@postgres-queue/devkit'
import { createEffectsTable, makeOrder, startPrivateCluster, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { auditEffects } from '../support/effects.js'
import { startEffectWorker } from '../support/fixtures.js'
import {
  entryPoints,
  isRunning,
  linesWith,
  type ServiceProcess,
  startService,
  stopService,
} from '../support/processes.js'

const OUTAGE_MS = 5000
/** "Quickly": well under a client's patience, and under the pool's 5 s connect timeout. */
const MAX_OUTAGE_LATENCY_MS = 3000
/** A request still unanswered after this is a hang. */
const HANG_MS = 10_000
const SUBMITTERS = 4

interface Exchange {
  startedAt: number
  endedAt: number
  /** HTTP status, or 'error' when the request itself failed (refused, reset, or hung past HANG_MS). */
  status: number | 'error'
  id?: number
  error?: string
}

// Per mode: ~10 s to start, 5 s down, then the drain; up to HANG_MS more per hung request.
t.setTimeout(240_000)

for (const mode of ['transaction', 'lease'] as const) {
  t.test(
    `${mode} mode: PostgreSQL stopped for 5 s mid-run: the api answers 503 quickly, no process exits, every acknowledged order completes exactly once`,
    async (t) => {
      // A server of its own: stopping the shared one would break every other test file.
      const cluster = await startPrivateCluster(t)
      const url = cluster.url()
      await migrateDatabase(url)
      const db = createDb(url, { maxConnections: 2 })
      t.teardown(() => closeDb(db))
      await createEffectsTable(db)

      const port = await freePort()
      const api = startService('api', [entryPoints.api], { DATABASE_URL: url, PORT: String(port), LOG_LEVEL: 'warn' })
      const workers = [1, 2, 3].map((n) =>
        startEffectWorker(`${mode}-w${n}`, {
          DATABASE_URL: url,
          WORKER_MODE: mode,
          WORKER_LEASE_MS: '2000',
          // A processor that takes a little time, as real ones do: the outage then finds batches in
          // hand, which is when a connection dies under an open transaction.
          PROCESS_MS: '20',
        }),
      )
      const all: ServiceProcess[] = [api, ...workers]
      t.teardown(() => Promise.all(all.map((p) => stopService(p))))
      const base = `http://127.0.0.1:${port}`
      await Promise.all(workers.map((w) => w.waitForLine((l) => l.msg === 'worker started', 60_000)))
      await waitFor(async () => (await exchange(`${base}/ready`)).status === 200, {
        message: 'the api to answer /ready with 200',
        timeoutMs: 60_000,
        intervalMs: 100,
      })

      const submissions: Exchange[] = []
      let submitting = true
      const submitters = Array.from({ length: SUBMITTERS }, async () => {
        while (submitting) {
          submissions.push(await exchange(`${base}/orders`, makeOrder()))
          await sleep(20)
        }
      })
      const acked = () => submissions.filter((s) => s.status === 201).length
      await waitFor(async () => acked() >= 100, {
        message: '100 orders acknowledged',
        timeoutMs: 30_000,
        intervalMs: 100,
      })

      await cluster.stop()
      const downAt = performance.now()
      const readiness: Exchange[] = []
      let down = true
      const readinessProbe = (async () => {
        while (down) {
          readiness.push(await exchange(`${base}/ready`))
          await sleep(250)
        }
      })()
      await sleep(OUTAGE_MS)
      down = false
      const restartAt = performance.now()
      await startCluster({ dataDir: cluster.dataDir, port: cluster.port })
      const upAt = performance.now()
      const upAtWall = Date.now()
      await readinessProbe
      await waitFor(async () => (await exchange(`${base}/ready`)).status === 200, {
        message: 'the api to answer /ready with 200',
        timeoutMs: 30_000,
        intervalMs: 100,
      })
      const ackedBeforeRestart = acked()
      await waitFor(async () => acked() >= ackedBeforeRestart + 100, {
        message: '100 more orders acknowledged after the restart',
        timeoutMs: 60_000,
        intervalMs: 100,
      })
      submitting = false
      await Promise.all(submitters)

      const ids = submissions.flatMap((s) => (s.id === undefined ? [] : [s.id]))
      await waitFor(async () => (await completedCount(db, ids)) === ids.length, {
        message: 'every acknowledged order completed',
        timeoutMs: 60_000,
        intervalMs: 100,
      })

      const during = submissions.filter((s) => s.startedAt >= downAt && s.endedAt <= restartAt)
      const statuses = countBy(submissions.map((s) => s.status))
      const slowestMs = Math.round(Math.max(...during.map((s) => s.endedAt - s.startedAt)))
      const readinessDuring = readiness.filter((r) => r.endedAt <= restartAt)
      t.comment(
        `${mode}: ${submissions.length} submissions, statuses ${JSON.stringify(statuses)}; ${during.length} answered during ` +
          `the ${Math.round(restartAt - downAt)} ms outage, slowest ${slowestMs} ms; /ready during it: ` +
          `${JSON.stringify(countBy(readinessDuring.map((r) => r.status)))}; restart took ${Math.round(upAt - restartAt)} ms`,
      )
      const failedRequests = submissions.filter((s) => s.status === 'error').map((s) => String(s.error))
      if (failedRequests.length > 0) t.comment(`${mode}: failed requests: ${JSON.stringify(countBy(failedRequests))}`)

      // Fails while postgres.js 3.4.9 is unpatched, in transaction mode about 2 runs in 3: when the
      // server kills a connection under an open transaction, begin() writes its own ROLLBACK after the
      // socket is gone, nextWrite (connection.js:255) throws from a setImmediate, and close-with-grace
      // stops the worker on that uncaught exception (porsager/postgres#1208).
      t.same(
        all.filter((p) => !isRunning(p)).map((p) => p.name),
        [],
        'no process exited because the database went away',
        {
          exits: all
            .filter((p) => !isRunning(p))
            .map((p) => ({ name: p.name, code: p.child.exitCode, last: lastErrors(p) })),
        },
      )
      // A query waits out postgres.js's reconnect backoff before it even tries to connect: uncapped,
      // that grows to 10-20 s across the pool, and requests hung past HANG_MS, after the restart too.
      t.same(
        Object.keys(statuses).filter((s) => s !== '201' && s !== '503'),
        [],
        `every submission was acknowledged (201) or refused as unavailable (503): no 500, no reset, no hang past ${HANG_MS} ms`,
        { failedRequests: failedRequests.length },
      )
      t.ok(
        during.length > 0 && during.every((s) => s.status === 503),
        'while the database was down, the api answered 503',
      )
      t.ok(slowestMs < MAX_OUTAGE_LATENCY_MS, `within ${MAX_OUTAGE_LATENCY_MS} ms (slowest: ${slowestMs} ms)`)
      t.ok(readinessDuring.length > 0 && readinessDuring.every((r) => r.status === 503), '/ready said 503 throughout')
      // Each worker still up resumes by itself, without a restart; the comment below says how soon.
      const resumedAfterMs: Record<string, number> = {}
      for (const worker of workers.filter(isRunning)) {
        t.ok(
          linesWith(worker, 'database unavailable; retrying on the next tick').length > 0,
          `${worker.name} logged the outage`,
        )
        const resumed = await worker
          .waitForLine((l) => l.msg === 'database reachable again', 30_000)
          .catch(() => undefined)
        t.ok(resumed, `${worker.name} resumed within 30 s of the restart`, { lastLines: lastLines(worker) })
        if (resumed) resumedAfterMs[worker.name] = Date.parse(resumed.time as string) - upAtWall
      }
      t.comment(`${mode}: workers resumed after the restart (ms): ${JSON.stringify(resumedAfterMs)}`)

      t.equal(new Set(ids).size, ids.length, 'every acknowledgement names its own order')
      t.same(
        await auditEffects(db, ids),
        { missing: [], doubled: [], foreign: 0 },
        'every acknowledged order completed exactly once',
      )
      const [unacked] = await db.execute<{ n: number }>(sql`
      select count(*)::int as n from orders where id <> all(${sql.param(ids)}::bigint[])`)
      // A 503 whose insert had committed before the connection dropped: stored and processed once,
      // but the client was told to retry (an Idempotency-Key makes that retry safe).
      t.comment(`${mode}: orders stored without a 201: ${unacked?.n}`)
      const survivors = all.filter(isRunning)
      t.same(
        await Promise.all(survivors.map((p) => stopService(p))),
        survivors.map(() => 0),
        'every process still up then stops cleanly on SIGTERM (a request still waiting on the database holds the api past its grace)',
        { shutdown: survivors.map((p) => ({ name: p.name, last: lastErrors(p) })) },
      )
    },
  )
}

async function exchange(url: string, body?: unknown): Promise<Exchange> {
  const startedAt = performance.now()
  try {
    const response = await fetch(url, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(HANG_MS),
    })
    const json = (await response.json()) as { id?: number }
    return {
      startedAt,
      endedAt: performance.now(),
      status: response.status,
      id: response.status === 201 ? json.id : undefined,
    }
  } catch (err) {
    return {
      startedAt,
      endedAt: performance.now(),
      status: 'error',
      error: err instanceof Error ? err.name : String(err),
    }
  }
}

async function completedCount(db: Db, ids: readonly number[]): Promise<number> {
  const [row] = await db.execute<{ n: number }>(sql`
    select count(*)::int as n from orders where status = 'completed' and id = any(${sql.param(ids)}::bigint[])`)
  return row?.n ?? 0
}

/** The process's last few lines, short: what it was doing when it went quiet. */
function lastLines(service: ServiceProcess): Record<string, unknown>[] {
  return service.lines.slice(-8).map((l) => ({
    time: l.time,
    msg: l.msg,
    err: (l.err as { message?: string } | undefined)?.message,
  }))
}

/** The process's last error-level lines (pino level 50 and up), as `msg: err.message`. */
function lastErrors(service: ServiceProcess): string[] {
  return service.lines
    .filter((l) => (l.level as number) >= 50)
    .slice(-3)
    .map((l) => `${String(l.msg)}: ${String((l.err as { message?: string } | undefined)?.message ?? '')}`)
}

function countBy(values: readonly (string | number)[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const value of values) counts[String(value)] = (counts[String(value)] ?? 0) + 1
  return counts
}
