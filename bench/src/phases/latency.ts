import { listenForOrders, submitOrder } from '@postgres-queue/db'
import postgres from 'postgres'
import { nowMs } from '../clock.js'
import type { BenchContext } from '../context.js'
import { BENCH_ORDER, createOurDatabase, dropOurDatabase, verifyOrders } from '../ours/orders.js'
import { startOurApi, startOurWorkers } from '../ours/services.js'
import { PEER_NAMES, PEERS, type PeerName } from '../peers/index.js'
import { startPeerWorkers } from '../peers/workers.js'
import { measurePickup, type PickupMeasure } from '../pickup.js'
import { scripts, stopAll, waitUntil } from '../processes.js'
import type { LatencyResult } from '../results.js'
import { DEFAULT_BATCH_SIZE, WORKER_MODES, type WorkerMode } from '../settings.js'
import { summarizeLatencies } from '../stats.js'
import { REPORT_STARTS_ENV } from '../workers/protocol.js'
import { describeLatency } from './describe.js'

/** Idle worker processes per system, as issue 4 measures pickup. */
const LATENCY_WORKERS = 3

/** Pickup latency: ours in each mode (submitted over HTTP), then each peer (submitted by its client). */
export async function runLatencyPhase(ctx: BenchContext): Promise<LatencyResult[]> {
  const results: LatencyResult[] = []
  const runs = [
    ...WORKER_MODES.map((mode) => () => latencyOurs(ctx, mode, 'http')),
    // Submitted in the client's own transaction, as graphile-worker's add_job() is.
    () => latencyOurs(ctx, 'transaction', 'sql'),
    ...PEER_NAMES.map((peer) => () => latencyPeer(ctx, peer)),
  ]
  for (const run of runs) {
    const result = await run()
    results.push(result)
    ctx.log(describeLatency(result))
  }
  return results
}

/**
 * Ours: the real api takes each order (POST /orders, one at a time, the client's clock started just
 * before the request), and three processes of the real worker loop with a recording processor pick
 * them up, by whatever wakes the worker: the drain tick (every second here, after up to
 * WORKER_JITTER_MS) and any wake-up the worker has. Timed per hop too: the insert's statement
 * start (the order's createdAt, the server's clock on this machine), the api's answer, and the
 * arrival of the api's NOTIFY at a listener of the bench's own, as at a worker's.
 *
 * `via: 'sql'`: each order is submitted instead with submit_order() in a transaction of the
 * client's own (BEGIN, the call, COMMIT, on a connection it keeps), its wake-up riding on that commit.
 */
async function latencyOurs(ctx: BenchContext, mode: WorkerMode, via: 'http' | 'sql'): Promise<LatencyResult> {
  const { url, db } = await createOurDatabase(ctx, `ours_latency_${mode}_${via}`)
  const api = await startOurApi(url)
  const client = postgres(url, { max: 1, onnotice: () => {} })
  const workers = startOurWorkers(url, LATENCY_WORKERS, {
    mode,
    batchSize: DEFAULT_BATCH_SIZE,
    script: scripts.latencyWorker,
    extraEnv: { [REPORT_STARTS_ENV]: '1' },
  })
  const body = JSON.stringify(BENCH_ORDER)
  const hops: Hops = { stored: new Map(), answered: new Map(), notified: [] }
  const subscription = await listenForOrders(db, () => hops.notified.push(nowMs()))
  try {
    const measure = await measurePickup(ctx, workers, async () => {
      if (via === 'sql') return client.begin((tx) => submitOrder(tx, BENCH_ORDER))
      const res = await api.post('/orders', body)
      const answeredAt = nowMs()
      if (res.status !== 201) throw new Error(`POST /orders answered ${res.status}: ${res.text}`)
      const order = JSON.parse(res.text) as { id: number; createdAt: string }
      hops.stored.set(order.id, Date.parse(order.createdAt))
      hops.answered.set(order.id, answeredAt)
      return order.id
    })
    await stopAll(workers)
    const stored = await verifyOrders(db, { after: 0, expected: ctx.sizes.latencyOrders })
    const problems = [...measure.problems, ...stored.exactlyOnce.problems]
    return {
      system: 'ours',
      label: `${mode} mode, ${via === 'sql' ? "submit_order() in the client's own transaction" : 'POST /orders'} to ${LATENCY_WORKERS} idle workers (WORKER_CRON every second, other settings default)`,
      workers: LATENCY_WORKERS,
      submitted: ctx.sizes.latencyOrders,
      latencyMs: measure.latencyMs,
      hopsMs: via === 'http' ? hopTimes(measure, hops) : undefined,
      exactlyOnce: {
        ok: problems.length === 0,
        how: 'one processor start per order, and every order read back completed with attempts = 1',
        problems,
      },
    }
  } finally {
    await subscription.unsubscribe()
    await client.end()
    await stopAll([...workers, api.child])
    await dropOurDatabase(ctx, url, db)
  }
}

interface Hops {
  stored: Map<number, number>
  answered: Map<number, number>
  /** When each notification arrived, in order. */
  notified: number[]
}

/** Each hop's time from the send, per order; a notification counts for the first order sent before it. */
function hopTimes(measure: PickupMeasure, hops: Hops): Record<string, ReturnType<typeof summarizeLatencies>> {
  const sent = [...measure.submittedAt].sort((a, b) => a[1] - b[1])
  const notifiedAfter = (at: number, before: number) => hops.notified.find((n) => n >= at && n < before)
  const times = { 'insert began': [], 'api answered': [], 'NOTIFY arrived': [], 'handler started': [] } as Record<
    string,
    number[]
  >
  sent.forEach(([id, at], i) => {
    const next = sent[i + 1]?.[1] ?? Infinity
    const values: [string, number | undefined][] = [
      ['insert began', hops.stored.get(id)],
      ['api answered', hops.answered.get(id)],
      ['NOTIFY arrived', notifiedAfter(at, next)],
      ['handler started', measure.startedAt.get(id)],
    ]
    for (const [hop, value] of values) if (value !== undefined) times[hop]?.push(value - at)
  })
  return Object.fromEntries(Object.entries(times).map(([hop, values]) => [hop, summarizeLatencies(values)]))
}

async function latencyPeer(ctx: BenchContext, system: PeerName): Promise<LatencyResult> {
  const url = await ctx.server.createDatabase(`${system}_latency`)
  const peer = await PEERS[system](url)
  const running = startPeerWorkers(peer, url, LATENCY_WORKERS, { [REPORT_STARTS_ENV]: '1' })
  try {
    const measure = await measurePickup(ctx, running.children, async (n) => {
      await peer.addOne(n)
      return n
    })
    // The last completions may still be on their way to the table when the last handler has started;
    // a timeout here shows up as a problem from checkTable.
    await waitUntil(`${system} to record every completion`, async () => (await peer.remaining()) === 0, {
      timeoutMs: 5000,
    }).catch(() => {})
    const problems = [...measure.problems, ...(await peer.checkTable(ctx.sizes.latencyOrders))]
    return {
      system,
      label: `${peer.system === 'pg-boss' ? 'send()' : 'addJob()'} one at a time to ${LATENCY_WORKERS} idle worker processes`,
      workers: LATENCY_WORKERS,
      submitted: ctx.sizes.latencyOrders,
      latencyMs: measure.latencyMs,
      exactlyOnce: {
        ok: problems.length === 0,
        how: "one handler start per job, and the peer's table checked",
        problems,
      },
    }
  } finally {
    await stopAll(running.children)
    await peer.close()
    await ctx.server.dropDatabase(url)
  }
}
