import type { BenchContext } from '../context.js'
import { type LoopsResult, runLoops } from '../loops.js'
import type { EnqueueResult } from '../results.js'
import { ENQUEUE } from '../settings.js'
import { percentile, perSecond, round } from '../stats.js'
import { PEERS, type PeerName } from './index.js'

/**
 * A peer's enqueue, on a fresh database, from this process: one job per call with
 * `ENQUEUE.singleInFlight` calls in flight (send / addJob), then `ENQUEUE.bulkSize` jobs per call
 * (insert / addJobs). The peers have no HTTP API; these are their client libraries' calls.
 * Each measure follows a short warm-up, whose jobs count in the stored-jobs check.
 */
export async function enqueuePeer(ctx: BenchContext, system: PeerName): Promise<EnqueueResult[]> {
  const url = await ctx.server.createDatabase(`${system}_enqueue`)
  const peer = await PEERS[system](url)
  let next = 0
  let added = 0
  const one = async () => {
    await peer.addOne(next++)
    added += 1
  }
  const many = async () => {
    const ns = Array.from({ length: ENQUEUE.bulkSize }, () => next++)
    await peer.addMany(ns)
    added += ns.length
  }
  const seconds = ctx.sizes.enqueueSeconds
  try {
    await runLoops({ inFlight: ENQUEUE.singleInFlight, seconds: 1 }, one)
    let cpu = await ctx.startCpuMeter(() => [])
    const single = await runLoops({ inFlight: ENQUEUE.singleInFlight, seconds }, one)
    const singleCpu = await cpu()

    await runLoops({ inFlight: ENQUEUE.bulkInFlight, calls: 2 * ENQUEUE.bulkInFlight }, many)
    cpu = await ctx.startCpuMeter(() => [])
    const bulk = await runLoops({ inFlight: ENQUEUE.bulkInFlight, seconds }, many)
    const bulkCpu = await cpu()

    const stored = await peer.stored()
    const problems = stored === added ? [] : [`${stored} jobs stored, ${added} acknowledged`]
    const exactlyOnce = {
      ok: problems.length === 0,
      how: "jobs in the peer's table equal jobs acknowledged (warm-ups included)",
      problems,
    }
    const api = system === 'pg-boss' ? { one: 'send()', many: 'insert()' } : { one: 'addJob()', many: 'addJobs()' }
    return [
      result(
        system,
        'single',
        `${api.one}, 1 job a call, ${ENQUEUE.singleInFlight} in flight`,
        ENQUEUE.singleInFlight,
        1,
        single,
        exactlyOnce,
        singleCpu,
      ),
      result(
        system,
        'bulk',
        `${api.many}, ${ENQUEUE.bulkSize} jobs a call, ${ENQUEUE.bulkInFlight} in flight`,
        ENQUEUE.bulkInFlight,
        ENQUEUE.bulkSize,
        bulk,
        exactlyOnce,
        bulkCpu,
      ),
    ]
  } finally {
    await peer.close()
    await ctx.server.dropDatabase(url)
  }
}

function result(
  system: PeerName,
  kind: 'single' | 'bulk',
  label: string,
  inFlight: number,
  perCall: number,
  loops: LoopsResult,
  exactlyOnce: EnqueueResult['exactlyOnce'],
  cpu: EnqueueResult['cpu'],
): EnqueueResult {
  const jobs = loops.calls * perCall
  return {
    system,
    label,
    kind,
    inFlight,
    perCall,
    jobs,
    ms: loops.ms,
    rate: perSecond(jobs, loops.ms),
    latencyMs: {
      p50: round(percentile(loops.latencies, 50), 2),
      p99: round(percentile(loops.latencies, 99), 2),
      max: round(percentile(loops.latencies, 100), 2),
    },
    errors: 0,
    non2xx: 0,
    exactlyOnce,
    cpu,
  }
}
