import { nowMs } from '../clock.js'
import type { BenchContext } from '../context.js'
import { stopAll, waitUntil } from '../processes.js'
import type { ProcessingResult } from '../results.js'
import { checkExactlyOnce, perSecond } from '../stats.js'
import { PEERS, type PeerName } from './index.js'
import { startPeerWorkers } from './workers.js'

/** The scripts report progress every 100 ms; looking twice as often catches the end within a tick. */
const PROGRESS_POLL_MS = 50

/**
 * One processing run of a peer: a fresh database, `sizes.processingOrders` jobs preloaded in bulk,
 * then `workers` processes of its worker script until every job is handled and gone from (or
 * completed in) its table. Throughput is first to last handler return across the processes.
 */
export async function processPeer(
  ctx: BenchContext,
  system: PeerName,
  workers: number,
  { queues = 0, jobs = ctx.sizes.processingOrders }: { queues?: number; jobs?: number } = {},
): Promise<ProcessingResult> {
  const url = await ctx.server.createDatabase(`${system}_${workers}w_${queues}q`)
  const peer = await PEERS[system](url)
  try {
    await peer.preload(jobs, queues)
    await ctx.server.checkpoint()

    const running = startPeerWorkers(peer, url, workers, queues ? { SERIAL_QUEUES: '1' } : {})
    const cpu = await ctx.startCpuMeter(() => running.children.map((c) => c.pid))
    const started = nowMs()
    let wallMs: number
    let cpuUse: Awaited<ReturnType<typeof cpu>>
    let reports: Awaited<ReturnType<typeof running.reports>>
    try {
      const options = { intervalMs: PROGRESS_POLL_MS, children: running.children }
      await waitUntil(`${system} handlers to see every job`, () => running.handled() >= jobs, options)
      // Handlers return before the completion is written (graphile-worker batches it): wait for the table.
      await waitUntil(`${system} to record every completion`, async () => (await peer.remaining()) === 0, options)
      wallMs = nowMs() - started
      cpuUse = await cpu()
      reports = await running.reports()
    } finally {
      await stopAll(running.children)
    }

    const keys = reports.flatMap((r) => r.keys)
    const problems = [
      ...checkExactlyOnce(
        keys,
        Array.from({ length: jobs }, (_, n) => n),
      ),
      ...(await peer.checkTable(jobs)),
    ]
    const firstDone = Math.min(...reports.map((r) => r.firstDoneAt ?? Infinity))
    const lastDone = Math.max(...reports.map((r) => r.lastDoneAt ?? -Infinity))
    const firstToLastMs = lastDone - firstDone
    return {
      system,
      label: `documented high-throughput settings${queues ? `, ${queues.toLocaleString('en')} named queue${queues === 1 ? '' : 's'}` : ''}`,
      workers,
      jobs,
      historyRows: 0,
      delayedRows: 0,
      ...(queues ? { keys: queues } : {}),
      firstToLastMs,
      rate: perSecond(jobs, firstToLastMs),
      timing: 'first to last handler return, across the worker processes',
      wallMs,
      wallRate: perSecond(jobs, wallMs),
      perWorker: Object.fromEntries(reports.map((r, i) => [running.children[i]!.name, r.keys.length])),
      exactlyOnce: {
        ok: problems.length === 0,
        how: "each job's n counted by the handlers across processes, and the peer's table checked",
        problems,
      },
      cpu: cpuUse,
    }
  } finally {
    await peer.close()
    await ctx.server.dropDatabase(url)
  }
}
