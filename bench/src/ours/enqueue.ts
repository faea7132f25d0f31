import { insertOrders } from '@postgres-queue/db'
import autocannon from 'autocannon'
import type { BenchContext } from '../context.js'
import { runLoops } from '../loops.js'
import type { EnqueueResult } from '../results.js'
import { ENQUEUE } from '../settings.js'
import { percentile, perSecond, round } from '../stats.js'
import { BENCH_ORDER, countOrders, createOurDatabase, dropOurDatabase } from './orders.js'
import { startOurApi } from './services.js'

/**
 * Requests of the two warm-ups before each HTTP measure: the first lets JIT, pools and keep-alive
 * connections settle, the second (already warm) times the rate the measure's request count is set from.
 * Each lasts about a second: a shorter one's rate is mostly autocannon's start-up (1,000 requests
 * timed ~1k/s for an api doing 4.9k/s, and 6 batch calls ~6 calls/s for ~30), and the measures
 * then lasted 2 s instead of 10.
 */
const WARMUP_SINGLE = 4000
const WARMUP_BATCH_CALLS = 30

/**
 * Ours, over HTTP, on one fresh database and one api process: `POST /orders` under autocannon, then
 * `POST /orders/batch` with 1,000 orders a call; plus, labelled apart, the product's insertOrders
 * called directly with the peers' concurrency, to separate the HTTP layer from the database.
 *
 * autocannon runs by request count, not duration: a timed run stops with requests in flight that
 * the api may still commit, and then the stored count could not be checked against the 201s. The
 * count is the second warm-up's rate times the measure's length.
 */
export async function enqueueOurs(ctx: BenchContext): Promise<EnqueueResult[]> {
  const { url, db } = await createOurDatabase(ctx, 'ours_enqueue')
  const api = await startOurApi(url)
  const results: EnqueueResult[] = []
  let accepted = 0
  try {
    const singleBody = JSON.stringify(BENCH_ORDER)
    const batchBody = JSON.stringify({ orders: Array.from({ length: ENQUEUE.bulkSize }, () => BENCH_ORDER) })

    const http = async (path: string, body: string, connections: number, perCall: number, warmup: number) => {
      const request = { url: `${api.baseUrl}${path}`, method: 'POST' as const, body, headers: api.headers, connections }
      let warmRate = 0
      for (let i = 0; i < 2; i += 1) {
        const warm = await autocannon({ ...request, amount: warmup })
        accepted += warm['2xx'] * perCall
        warmRate = perSecond(warm['2xx'], warm.finish.getTime() - warm.start.getTime())
      }
      const amount = Math.max(warmup, Math.round(warmRate * ctx.sizes.enqueueSeconds))
      const cpu = await ctx.startCpuMeter(() => [api.child.pid])
      const run = await autocannon({ ...request, amount })
      const cpuUse = await cpu()
      accepted += run['2xx'] * perCall
      const ms = run.finish.getTime() - run.start.getTime()
      return { run, ms, cpuUse }
    }

    // At the peers' concurrency (the comparison), then at many connections (an api's real load).
    for (const connections of [ENQUEUE.singleInFlight, ENQUEUE.httpConnections]) {
      const single = await http('/orders', singleBody, connections, 1, WARMUP_SINGLE)
      results.push({
        system: 'ours',
        label: `POST /orders, autocannon, ${connections} connections`,
        kind: 'single',
        inFlight: connections,
        perCall: 1,
        jobs: single.run['2xx'],
        ms: single.ms,
        rate: perSecond(single.run['2xx'], single.ms),
        latencyMs: { p50: single.run.latency.p50, p99: single.run.latency.p99, max: single.run.latency.max },
        errors: single.run.errors,
        non2xx: single.run.non2xx,
        exactlyOnce: NOT_CHECKED_YET,
        cpu: single.cpuUse,
      })
    }

    const batch = await http('/orders/batch', batchBody, ENQUEUE.bulkInFlight, ENQUEUE.bulkSize, WARMUP_BATCH_CALLS)
    results.push({
      system: 'ours',
      label: `POST /orders/batch, ${ENQUEUE.bulkSize} orders a call, autocannon, ${ENQUEUE.bulkInFlight} connections`,
      kind: 'bulk',
      inFlight: ENQUEUE.bulkInFlight,
      perCall: ENQUEUE.bulkSize,
      jobs: batch.run['2xx'] * ENQUEUE.bulkSize,
      ms: batch.ms,
      rate: perSecond(batch.run['2xx'] * ENQUEUE.bulkSize, batch.ms),
      latencyMs: { p50: batch.run.latency.p50, p99: batch.run.latency.p99, max: batch.run.latency.max },
      errors: batch.run.errors,
      non2xx: batch.run.non2xx,
      exactlyOnce: NOT_CHECKED_YET,
      cpu: batch.cpuUse,
    })

    // The library-level equivalent of the peers' one-call-per-job enqueue: no HTTP, same concurrency.
    await runLoops({ inFlight: ENQUEUE.singleInFlight, seconds: 1 }, async () => {
      await insertOrders(db, [BENCH_ORDER])
      accepted += 1
    })
    const cpu = await ctx.startCpuMeter(() => [])
    const direct = await runLoops({ inFlight: ENQUEUE.singleInFlight, seconds: ctx.sizes.enqueueSeconds }, async () => {
      await insertOrders(db, [BENCH_ORDER])
      accepted += 1
    })
    results.push({
      system: 'ours',
      label: `insertOrders() direct, 1 order a call, ${ENQUEUE.singleInFlight} in flight (no HTTP)`,
      kind: 'single',
      inFlight: ENQUEUE.singleInFlight,
      perCall: 1,
      jobs: direct.calls,
      ms: direct.ms,
      rate: perSecond(direct.calls, direct.ms),
      latencyMs: {
        p50: round(percentile(direct.latencies, 50), 2),
        p99: round(percentile(direct.latencies, 99), 2),
        max: round(percentile(direct.latencies, 100), 2),
      },
      errors: 0,
      non2xx: 0,
      exactlyOnce: NOT_CHECKED_YET,
      cpu: await cpu(),
    })

    // One read-back covers the three measures and their warm-ups: every 201 (and direct insert) is stored.
    const stored = await countOrders(db)
    const problems = stored === accepted ? [] : [`${stored} orders stored, ${accepted} acknowledged`]
    for (const result of results)
      result.exactlyOnce = {
        ok: problems.length === 0,
        how: 'orders stored equal orders acknowledged (201s x orders per call, warm-ups included)',
        problems,
      }
    return results
  } finally {
    await api.child.stop()
    await dropOurDatabase(ctx, url, db)
  }
}

/** Replaced by the one read-back at the end, which covers every measure of this database. */
const NOT_CHECKED_YET = { ok: false, how: 'not checked yet', problems: ['not checked yet'] }
