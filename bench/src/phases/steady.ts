import { setTimeout as sleep } from 'node:timers/promises'
import { DEFAULT_SCHEMA, submitOrder } from '@postgres-queue/db'
import postgres from 'postgres'
import type { BenchContext } from '../context.js'
import { loadHistory } from '../ours/history.js'
import { BENCH_ORDER, completionTimes, createOurDatabase, dropOurDatabase } from '../ours/orders.js'
import { startOurApi, startOurWorkers } from '../ours/services.js'
import { PEERS } from '../peers/index.js'
import { startPeerWorkers } from '../peers/workers.js'
import { listenForStarts } from '../pickup.js'
import { type Child, scripts, stopAll, waitUntil } from '../processes.js'
import type { SteadyProbe, SteadyResult, SteadyWindow, System } from '../results.js'
import { DEFAULT_BATCH_SIZE, type WorkerMode } from '../settings.js'
import { checkExactlyOnce, round, summarizeLatencies } from '../stats.js'
import { type DatabaseSample, openDatabaseSampler } from '../steady/database-sample.js'
import { startOpenLoop } from '../steady/open-loop.js'
import { PROCESSOR_WAIT_ENV, REPORT_STARTS_ENV } from '../workers/protocol.js'
import { describeSteady } from './describe.js'

/** Worker processes per system. */
const STEADY_WORKERS = 3
/** The rates each system runs at, as shares of the highest rate all of them carried in the probe. */
const RATE_SHARES = [0.5, 0.9] as const
/** A processor that does nothing, and one that waits as a call to another service would. */
const PROCESSORS = [
  { name: 'no-op', waitMs: 0 },
  { name: 'waits 20 ms', waitMs: 20 },
] as const
/** Calls outstanding at most: ours over as many kept-alive HTTP connections; the peers' pools queue theirs. */
const MAX_IN_FLIGHT = 64
/**
 * Calls in flight in the probe's closed loop: as many as the open loop may have, so the probe finds
 * what the system carries, not what 8 clients waiting on their answers can send (first tried: 8 gave
 * 200-600/s, bounded by each call's latency on a busy machine).
 */
const PROBE_IN_FLIGHT = MAX_IN_FLIGHT
/** Once the load stops, what is left must start within this, or the system fell behind for good. */
const DRAIN_TIMEOUT_MS = 120_000
/** The retention run's schedule: often enough to delete its history within the run. */
const RETENTION_CRON = '*/10 * * * * *'

interface SteadySystem {
  system: System
  mode?: WorkerMode
  /** Ours: POST /orders to the real api, or submit_order() in a transaction of the client's own. */
  via?: 'http' | 'sql'
}
/**
 * Ours in each mode submitted with POST /orders, and once with submit_order(), as the peers submit
 * (their client's one-job call, straight to the database); then each peer.
 */
const SYSTEMS: readonly SteadySystem[] = [
  { system: 'ours', mode: 'transaction', via: 'http' },
  { system: 'ours', mode: 'lease', via: 'http' },
  { system: 'ours', mode: 'transaction', via: 'sql' },
  { system: 'graphile-worker' },
  { system: 'pg-boss' },
]
/** Connections of ours' SQL submitter: as many as the peers' clients pool by default (node-postgres' 10). */
const SQL_SUBMIT_CONNECTIONS = 10

/** One system, running on a fresh database, ready to take jobs. */
interface Running {
  /** The worker processes, which report their processor starts. */
  children: Child[]
  /** Every process of the system, the api too: the CPU meter's services. */
  pids: number[]
  schema: string
  url: string
  submit(n: number): Promise<number>
  completionTimes(): Promise<Map<number, number> | undefined>
  close(): Promise<void>
}

/**
 * Steady state, open loop: per processor, a probe finds the highest rate every system carries
 * (SYSTEMS, 3 worker processes each), or BENCH_STEADY_CARRIED sets it; then each system runs
 * `sizes.steadySeconds` at 50% and at 90% of the lowest of them, with orders arriving on a
 * schedule whatever the answers. Per window (a minute, or a quarter of a shorter run): orders in and
 * out, latency from each order's due time to its processor's start and to its completion's write,
 * the backlog, and the database's side (claim buffers per call, table and index bytes, dead tuples,
 * autovacuum runs, checkpoints).
 */
export async function runSteadyPhase(ctx: BenchContext): Promise<{ probes: SteadyProbe[]; runs: SteadyResult[] }> {
  const seconds = await steadySeconds(ctx)
  const probes: SteadyProbe[] = []
  const runs: SteadyResult[] = []
  for (const processor of PROCESSORS) {
    const carried = carriedRate(await probeAll(ctx, processor, probes))
    for (const share of RATE_SHARES) {
      const rate = Math.max(1, Math.round(carried * share))
      for (const s of SYSTEMS) {
        const result = await steadyRun(ctx, s, processor, { rate, share, seconds })
        runs.push(result)
        ctx.log(describeSteady(result))
      }
    }
  }
  return { probes, runs }
}

/**
 * The `retention` phase: ours (transaction mode, POST /orders, no-op processor) at 90% of what every
 * system carries, with `sizes.historyRows` completed orders past RETENTION_DAYS in the table that
 * retention deletes while the load runs. The rate comes from the steady phase's probes when it ran,
 * else BENCH_STEADY_CARRIED, else probes of its own.
 */
export async function runRetentionPhase(ctx: BenchContext, probes: SteadyProbe[]): Promise<SteadyResult> {
  const noOp = PROCESSORS[0]
  const known = probes.filter((p) => p.processor === noOp.name)
  const carried = carriedRate(known.length ? known : await probeAll(ctx, noOp, probes))
  const share = RATE_SHARES.at(-1)!
  const result = await steadyRun(
    ctx,
    SYSTEMS[0]!,
    noOp,
    { rate: Math.round(carried * share), share, seconds: await steadySeconds(ctx) },
    ctx.sizes.historyRows,
  )
  ctx.log(describeSteady(result))
  return result
}

/** What each system carries with `processor` (or BENCH_STEADY_CARRIED for all), added to `probes`. */
async function probeAll(
  ctx: BenchContext,
  processor: (typeof PROCESSORS)[number],
  probes: SteadyProbe[],
): Promise<SteadyProbe[]> {
  const rate = ctx.sizes.steadyCarriedRate
  const found: SteadyProbe[] = []
  for (const s of SYSTEMS)
    found.push(rate ? { ...s, processor: processor.name, rate } : await probeCarried(ctx, s, processor))
  probes.push(...found)
  return found
}

/** The highest rate all of them carry. */
function carriedRate(probes: readonly SteadyProbe[]): number {
  return Math.min(...probes.map((p) => p.rate))
}

/** BENCH_STEADY_SECONDS, or long enough to cross two timed checkpoints. */
async function steadySeconds(ctx: BenchContext): Promise<number> {
  const seconds = ctx.sizes.steadySeconds ?? (await crossesTwoCheckpoints(ctx))
  ctx.log(`steady state: ${seconds} s per run`)
  return seconds
}

/** Two checkpoint_timeout periods and a minute: at least two timed checkpoints in every run. */
async function crossesTwoCheckpoints(ctx: BenchContext): Promise<number> {
  const setting = (await ctx.server.describe()).settings.checkpoint_timeout ?? '5min'
  const match = /^(\d+)\s*(s|min|h)?$/.exec(setting)
  const unit = { s: 1, min: 60, h: 3600 }[(match?.[2] ?? 's') as 's' | 'min' | 'h']
  return 2 * Number(match?.[1] ?? 300) * unit + 60
}

async function startSystem(
  ctx: BenchContext,
  s: SteadySystem,
  waitMs: number,
  label: string,
  historyRows = 0,
): Promise<Running> {
  const env = { [REPORT_STARTS_ENV]: '1', [PROCESSOR_WAIT_ENV]: String(waitMs) }
  if (s.system === 'ours') {
    const { url, db } = await createOurDatabase(ctx, label)
    if (historyRows) {
      await loadHistory(url, historyRows)
      await ctx.server.checkpoint()
    }
    const api = s.via === 'http' ? await startOurApi(url, { sockets: MAX_IN_FLIGHT }) : undefined
    const client = s.via === 'sql' ? postgres(url, { max: SQL_SUBMIT_CONNECTIONS, onnotice: () => {} }) : undefined
    const workers = startOurWorkers(url, STEADY_WORKERS, {
      mode: s.mode!,
      batchSize: DEFAULT_BATCH_SIZE,
      script: scripts.latencyWorker,
      extraEnv: historyRows ? { ...env, RETENTION_CRON } : env,
    })
    const body = JSON.stringify(BENCH_ORDER)
    return {
      children: workers,
      pids: [...workers, ...(api ? [api.child] : [])].map((c) => c.pid),
      schema: DEFAULT_SCHEMA,
      url,
      async submit() {
        if (client) return client.begin((tx) => submitOrder(tx, BENCH_ORDER))
        const res = await api!.post('/orders', body)
        if (res.status !== 201) throw new Error(`POST /orders answered ${res.status}: ${res.text}`)
        return (JSON.parse(res.text) as { id: number }).id
      },
      completionTimes: () => completionTimes(db),
      async close() {
        await client?.end()
        await stopAll([...workers, ...(api ? [api.child] : [])])
        await dropOurDatabase(ctx, url, db)
      },
    }
  }
  const url = await ctx.server.createDatabase(label)
  const peer = await PEERS[s.system](url)
  const workers = startPeerWorkers(peer, url, STEADY_WORKERS, env)
  return {
    children: workers.children,
    pids: workers.children.map((c) => c.pid),
    schema: peer.schema,
    url,
    submit: (n) => peer.addOne(n).then(() => n),
    completionTimes: () => peer.completionTimes(),
    async close() {
      await stopAll(workers.children)
      await peer.close()
      await ctx.server.dropDatabase(url)
    },
  }
}

/**
 * The highest rate a system carries: a closed loop of PROBE_IN_FLIGHT one-job calls while its
 * workers process, for `sizes.steadyProbeSeconds`; the rate is of processor starts over the last
 * two thirds (past the start-up). Whichever is slower, submitting or processing, bounds it.
 */
async function probeCarried(
  ctx: BenchContext,
  s: SteadySystem,
  processor: (typeof PROCESSORS)[number],
): Promise<SteadyProbe> {
  const running = await startSystem(ctx, s, processor.waitMs, `probe_${s.system}_${s.mode ?? ''}_${s.via ?? ''}`)
  try {
    const starts = listenForStarts(running.children)
    await Promise.all(running.children.map((child) => child.waitFor('ready')))
    const probeMs = ctx.sizes.steadyProbeSeconds * 1000
    const began = performance.now()
    let n = 0
    await Promise.all(
      Array.from({ length: PROBE_IN_FLIGHT }, async () => {
        while (performance.now() - began < probeMs) await running.submit(n++)
      }),
    )
    const seconds = (performance.now() - began) / 1000
    const from = Date.now() - (2 * probeMs) / 3
    const counted = [...starts.firstStart.values()].filter((at) => at >= from).length
    const probe = {
      system: s.system,
      mode: s.mode,
      via: s.via,
      processor: processor.name,
      rate: Math.round(counted / ((2 * probeMs) / 3 / 1000)),
      submitted: Math.round(n / seconds),
    }
    ctx.log(
      `steady probe ${s.system}${s.mode ? ` ${s.mode} mode via ${s.via}` : ''}, ${processor.name}: carries ${probe.rate}/s (submitted ${probe.submitted}/s)`,
    )
    return probe
  } finally {
    await running.close()
  }
}

async function steadyRun(
  ctx: BenchContext,
  s: SteadySystem,
  processor: (typeof PROCESSORS)[number],
  { rate, share, seconds }: { rate: number; share: number; seconds: number },
  historyRows = 0,
): Promise<SteadyResult> {
  const label = `steady_${s.system}_${s.mode ?? ''}_${s.via ?? ''}_${processor.waitMs}_${Math.round(share * 100)}`
  const running = await startSystem(ctx, s, processor.waitMs, label, historyRows)
  const sampler = await openDatabaseSampler(running.url, running.schema)
  try {
    const starts = listenForStarts(running.children)
    await Promise.all(running.children.map((child) => child.waitFor('ready')))
    const durationMs = seconds * 1000
    const windowMs = Math.min(60_000, durationMs / 4)
    const windows = Math.ceil(durationMs / windowMs)
    const stopCpu = await ctx.startCpuMeter(() => running.pids)
    const first = await sampler.sample()
    const load = startOpenLoop({ rate, durationMs, maxInFlight: MAX_IN_FLIGHT, submit: running.submit })
    // At each window's end: the database's side, and the backlog (acknowledged, not yet started).
    const samples: { db: DatabaseSample; backlog: number }[] = []
    for (let w = 1; w <= windows; w++) {
      await sleep(Math.max(0, load.began + w * windowMs - Date.now()))
      samples.push({
        db: await sampler.sample(),
        backlog: load.acknowledged() - countStarted(load.dueAt, starts.firstStart),
      })
    }
    await load.done
    const cpu = await stopCpu()
    const drained = await waitUntil(
      'every acknowledged job to start',
      () => [...load.dueAt.keys()].every((key) => starts.firstStart.has(key)),
      { intervalMs: 100, timeoutMs: DRAIN_TIMEOUT_MS, children: running.children },
    ).then(
      () => true,
      () => false,
    )
    // The last completions may still be on their way to the table.
    await sleep(1000)
    const completed = await running.completionTimes()
    // The first window holds the start-up (connections opening, code not yet optimized): shown per
    // window, left out of the run's totals.
    const pastWarmUp = [...load.dueAt].filter(([, due]) => due >= load.began + windowMs).map(([key]) => key)
    const problems = checkExactlyOnce(
      starts.every.filter((key) => load.dueAt.has(key)),
      drained ? [...load.dueAt.keys()] : [],
    )
    if (!drained) problems.push(`not every order started within ${DRAIN_TIMEOUT_MS} ms of the load's end: fell behind`)
    return {
      system: s.system,
      mode: s.mode,
      via: s.via,
      label: `${s.mode ? `${s.mode} mode, ${s.via === 'sql' ? "submit_order() in the client's transaction" : 'POST /orders'}` : s.system === 'pg-boss' ? 'send()' : 'addJob()'}${historyRows ? `, ${historyRows.toLocaleString('en')} completed orders deleted by retention (RETENTION_CRON ${RETENTION_CRON})` : ''}`,
      processor: processor.name,
      share,
      rate,
      seconds,
      historyRows,
      errors: load.errors(),
      longestSendWaitMs: round(load.longestWaitMs(), 1),
      windows: summarizeWindows(
        load.began,
        windowMs,
        [first, ...samples.map((x) => x.db)],
        samples,
        load.dueAt,
        starts.firstStart,
        completed,
      ),
      startMs: summarizeLatencies(latencies(load.dueAt, starts.firstStart, pastWarmUp)),
      completedMs: completed ? summarizeLatencies(latencies(load.dueAt, completed, pastWarmUp)) : undefined,
      exactlyOnce: {
        ok: problems.length === 0,
        how: 'one processor start per acknowledged order, every one of them started',
        problems,
      },
      cpu,
    }
  } finally {
    await sampler.close()
    await running.close()
  }
}

function countStarted(dueAt: ReadonlyMap<number, number>, started: ReadonlyMap<number, number>): number {
  let n = 0
  for (const key of dueAt.keys()) if (started.has(key)) n++
  return n
}

/** From each job's due time to `at`'s instant for it, for the jobs `at` has. */
function latencies(
  dueAt: ReadonlyMap<number, number>,
  at: ReadonlyMap<number, number>,
  keys: Iterable<number> = dueAt.keys(),
): number[] {
  const values: number[] = []
  for (const key of keys) {
    const when = at.get(key)
    if (when !== undefined) values.push(when - dueAt.get(key)!)
  }
  return values
}

function summarizeWindows(
  began: number,
  windowMs: number,
  db: readonly DatabaseSample[],
  samples: readonly { backlog: number }[],
  dueAt: ReadonlyMap<number, number>,
  started: ReadonlyMap<number, number>,
  completed: ReadonlyMap<number, number> | undefined,
): SteadyWindow[] {
  const dueIn = samples.map(() => [] as number[])
  for (const [key, due] of dueAt) dueIn[Math.min(samples.length - 1, Math.floor((due - began) / windowMs))]?.push(key)
  const startsIn = samples.map(() => 0)
  for (const at of started.values()) {
    const w = Math.floor((at - began) / windowMs)
    if (w >= 0 && w < samples.length) startsIn[w]! += 1
  }
  return samples.map((sample, w) => {
    const before = db[w]!
    const after = db[w + 1]!
    const claims = after.claimCalls - before.claimCalls
    return {
      endsAtSecond: round(((w + 1) * windowMs) / 1000),
      in: dueIn[w]!.length,
      started: startsIn[w]!,
      startMs: summarizeLatencies(latencies(dueAt, started, dueIn[w]!)),
      completedMs: completed ? summarizeLatencies(latencies(dueAt, completed, dueIn[w]!)) : undefined,
      backlog: sample.backlog,
      claimBuffersPerCall: claims > 0 ? round((after.claimBuffers - before.claimBuffers) / claims, 1) : undefined,
      claimsPerOrder: startsIn[w]! > 0 ? round(claims / startsIn[w]!, 2) : undefined,
      bytes: after.bytes,
      deadTuples: after.deadTuples,
      autovacuums: after.autovacuums - before.autovacuums,
      checkpoints: after.checkpoints - before.checkpoints,
    }
  })
}
