import { setTimeout as sleep } from 'node:timers/promises'
import { nowMs } from './clock.js'
import type { BenchContext } from './context.js'
import { type Child, waitUntil } from './processes.js'
import { checkExactlyOnce, type LatencySummary, summarizeLatencies } from './stats.js'

/** After the workers say ready, let their start-up work (first polls, first drains) finish: idle means idle. */
const SETTLE_MS = 1000
/** Long enough for a poll-based worker to notice the last job. */
const LAST_PICKUP_TIMEOUT_MS = 15_000

/**
 * Every processor start the children report (their scripts run with BENCH_REPORT_STARTS=1): each
 * key's first start, and every start, to find a key started twice.
 */
export function listenForStarts(children: readonly Child[]): { firstStart: Map<number, number>; every: number[] } {
  const firstStart = new Map<number, number>()
  const every: number[] = []
  for (const child of children)
    child.onMessage((message) => {
      if (message.type !== 'started') return
      every.push(message.key)
      if (!firstStart.has(message.key)) firstStart.set(message.key, message.at)
    })
  return { firstStart, every }
}

export interface PickupMeasure {
  latencyMs: LatencySummary
  /** Problems with the handlers' start messages: a job started twice, or never. */
  problems: string[]
  /** Each job's key: when its submitting call began, and when its handler first started. */
  submittedAt: ReadonlyMap<number, number>
  startedAt: ReadonlyMap<number, number>
}

/**
 * Submits `sizes.latencyOrders` jobs one at a time, `sizes.latencyGapMs` apart (the next waits for
 * the previous call when that takes longer), to idle `children` that send a `started` message per
 * job; the latency of each job is its handler's start minus the instant just before the submitting
 * call began. `submit` returns the job's key as the handlers report it.
 */
export async function measurePickup(
  ctx: BenchContext,
  children: readonly Child[],
  submit: (index: number) => Promise<number>,
): Promise<PickupMeasure> {
  const { firstStart: starts, every: startedKeys } = listenForStarts(children)
  await Promise.all(children.map((child) => child.waitFor('ready')))
  await sleep(SETTLE_MS)

  const submitted = new Map<number, number>()
  const began = nowMs()
  for (let i = 0; i < ctx.sizes.latencyOrders; i += 1) {
    const wait = began + i * ctx.sizes.latencyGapMs - nowMs()
    if (wait > 0) await sleep(wait)
    const at = nowMs()
    submitted.set(await submit(i), at)
  }
  await waitUntil('every submitted job to start', () => [...submitted.keys()].every((key) => starts.has(key)), {
    intervalMs: 20,
    timeoutMs: LAST_PICKUP_TIMEOUT_MS,
    children,
  })
  // A late duplicate would come after the first start: give one more moment to see it.
  await sleep(200)

  const latencies = [...submitted].map(([key, at]) => starts.get(key)! - at)
  return {
    latencyMs: summarizeLatencies(latencies),
    problems: checkExactlyOnce(startedKeys, [...submitted.keys()]),
    submittedAt: submitted,
    startedAt: starts,
  }
}
