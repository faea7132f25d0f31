import { fileURLToPath } from 'node:url'
import { insertOrders, sql } from '@postgres-queue/db'
import { makeOrder, openEffectsDatabase } from '@postgres-queue/testkit'
import t from 'tap'
import { auditEffects } from '../support/effects.js'
import { type ServiceProcess, startService, stopService } from '../support/processes.js'
import { killWhileDraining } from '../support/work.js'

// Per-key FIFO across a fleet, as the processor sees it: 3 worker processes drain orders of 30
// orderingKeys (and unkeyed ones) while they are SIGKILLed and replaced, and some orders fail their
// first attempt. From the processor's own start and end times (test/fixtures/keyed-worker.ts):
// the attempts of one key never overlap, and run in id order (a retry before the next order).

const KEYS = 30
const ORDERS = 1500
const WORKERS = 3
const LEASE_MS = 1500
const DRAIN_DEADLINE_MS = Number(process.env.DRAIN_DEADLINE_MS ?? 120_000)
const keyedWorker = fileURLToPath(new URL('../fixtures/dist/keyed-worker.js', import.meta.url))

t.setTimeout(2 * DRAIN_DEADLINE_MS + 60_000)

type Span = {
  order_id: string
  ordering_key: string | null
  /** Milliseconds since the epoch, with microseconds in the fraction. */
  started_at: number
  ended_at: number
  ok: boolean
}

/** For each key, its first overlap and its first order out of id order, if any. */
function checkLines(spans: readonly Span[]): { overlaps: string[]; outOfOrder: string[]; keys: number } {
  const byKey = new Map<string, Span[]>()
  for (const span of spans) {
    if (span.ordering_key === null) continue
    const line = byKey.get(span.ordering_key) ?? []
    line.push(span)
    byKey.set(span.ordering_key, line)
  }
  const overlaps: string[] = []
  const outOfOrder: string[] = []
  for (const [key, line] of byKey) {
    line.sort((a, b) => a.started_at - b.started_at)
    for (let i = 1; i < line.length; i++) {
      const [before, after] = [line[i - 1]!, line[i]!]
      if (after.started_at < before.ended_at) overlaps.push(`${key}: ${before.order_id} and ${after.order_id}`)
      if (Number(after.order_id) < Number(before.order_id))
        outOfOrder.push(`${key}: ${after.order_id} after ${before.order_id}`)
    }
  }
  return { overlaps, outOfOrder, keys: byKey.size }
}

for (const mode of ['transaction', 'lease'] as const) {
  t.test(`${mode} mode: 3 workers, killed and replaced, run each key's orders one at a time, in order`, async (t) => {
    t.setTimeout(DRAIN_DEADLINE_MS + 60_000)
    const { db, url } = await openEffectsDatabase(t, 4)
    await db.execute(sql`create table processor_spans (order_id bigint not null, ordering_key text,
      worker_id text not null, attempt int not null, started_at timestamptz not null,
      ended_at timestamptz not null, ok boolean not null)`)
    const ids: number[] = []
    for (let done = 0; done < ORDERS; done += 500) {
      const orders = Array.from({ length: 500 }, (_, i) =>
        makeOrder({ orderingKey: (done + i) % 7 === 6 ? undefined : `key-${(done + i) % KEYS}`, maxAttempts: 50 }),
      )
      ids.push(...(await insertOrders(db, orders)).map((o) => o.id))
    }

    const everStarted: ServiceProcess[] = []
    t.teardown(() => Promise.all(everStarted.map((w) => stopService(w))))
    const start = (slot: number) => {
      const worker = startService(`${mode}-w${slot}-${everStarted.length + 1}`, [keyedWorker], {
        DATABASE_URL: url,
        WORKER_ID: `${mode}-w${slot}-${everStarted.length + 1}`,
        WORKER_MODE: mode,
        WORKER_CRON: '* * * * * *',
        WORKER_JITTER_MS: '100',
        WORKER_LEASE_MS: String(LEASE_MS),
        WORKER_RETRY_BASE_MS: '20',
        WORKER_RETRY_MAX_MS: '100',
        PROCESS_MS: '2',
        FLAKY_EVERY: '7',
      })
      everStarted.push(worker)
      return worker
    }
    const fleet = Array.from({ length: WORKERS }, (_, slot) => start(slot + 1))

    const { kills, midBatchKills, drainedMs } = await killWhileDraining(db, {
      fleet,
      start,
      mode,
      total: ORDERS,
      deadlineMs: DRAIN_DEADLINE_MS,
      maxKills: 4,
      explainTimeout: async () =>
        (await db.execute(sql`select id, status, last_error from orders where last_error is not null limit 1`))[0],
    })

    const audit = await auditEffects(db, ids)
    t.same([audit.missing, audit.doubled, audit.foreign], [[], [], 0], 'every order completed once, with one effect')
    const spans = await db.execute<Span>(
      sql`select order_id, ordering_key, extract(epoch from started_at)::float8 * 1000 as started_at,
        extract(epoch from ended_at)::float8 * 1000 as ended_at, ok from processor_spans`,
    )
    const lines = checkLines(spans)
    t.equal(lines.keys, KEYS)
    t.same(lines.overlaps, [], 'no two attempts of one key overlap')
    t.same(lines.outOfOrder, [], "each key's orders run in id order, a retry before the next order")
    const retried = spans.filter((s) => !s.ok).length
    t.ok(retried >= ORDERS / 10, `first attempts failed on purpose: ${retried}`)
    t.ok(kills >= 2, `workers killed while they drained: ${kills}, ${midBatchKills} holding orders`)
    t.comment(
      `${mode}: ${ORDERS} orders of ${KEYS} keys drained in ${drainedMs} ms; ${kills} kills, ${retried} retries`,
    )
  })
}
