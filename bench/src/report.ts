import type { CpuUse } from './cpu.js'
import type {
  BenchResults,
  CeilingResult,
  EnqueueResult,
  ExactlyOnce,
  LatencyResult,
  ProcessingResult,
  SteadyResult,
  System,
} from './results.js'
import {
  BUSY_MACHINE_CORES,
  DEFAULT_BATCH_SIZE,
  DEFAULT_MAX_BATCH_SIZE,
  describeBatches,
  ENQUEUE,
  GRAPHILE_SETTINGS,
  PG_BOSS_SETTINGS,
  WORKER_MODES,
} from './settings.js'
import { type LatencySummary, mean, round } from './stats.js'

/** The markdown report: the summary table with issue 9's targets, then every measure in detail. */
export function renderMarkdown(r: BenchResults): string {
  const v = r.machine.peers
  const lines = [
    `# postgres-queue benchmark${r.quick ? ' (QUICK smoke run: sizes reduced, numbers not comparable)' : ''}`,
    '',
    `${r.startedAt}, ${Math.round(r.durationSeconds)} s. ${r.machine.cpus} x ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, ` +
      `${r.machine.os}, Node ${r.machine.node}. ${r.machine.postgres}, on the same machine.`,
    '',
    ...noiseWarning(r),
    ...summaryTable(r, v),
    '',
    'Ratios are ours divided by the other figure. Ceiling: plain SQL from postgres.js on our schema (see below).',
    ...detailSections(r),
    ...settingsSection(r),
  ]
  return `${lines.join('\n')}\n`
}

/** Says up front when other processes took CPU during the run, from the `other` column of every measure. */
function noiseWarning(r: BenchResults): string[] {
  const others = [...r.ceiling, ...r.processing, ...r.keys, ...r.scale, ...r.enqueue]
    .map((m) => m.cpu?.other)
    .filter((o): o is number => o !== undefined)
    .sort((a, b) => a - b)
  const median = others[Math.floor(others.length / 2)] ?? 0
  const start = r.machine.otherCoresAtStart ?? 0
  if (Math.max(median, start) <= BUSY_MACHINE_CORES) return []
  return [
    `**Noisy run:** other processes on this machine used ${start} cores before the first measure and a median of ` +
      `${median} (up to ${others.at(-1)}) of its ${r.machine.cpus} cores during the measures (the *other* CPU column). ` +
      'Every figure below is depressed by that, unevenly; compare systems only within this run, and rerun on a quiet machine for absolute numbers.',
    '',
  ]
}

function summaryTable(r: BenchResults, v: Record<string, string>): string[] {
  const rows: string[][] = []
  const ceiling = (pattern: string) => r.ceiling.find((c) => c.pattern === pattern)
  const processing = (system: System, workers: number, mode?: string, logLevel = 'warn') =>
    r.processing.find(
      (p) =>
        p.system === system &&
        p.workers === workers &&
        (system !== 'ours' ||
          (p.mode === mode && p.batchSize === DEFAULT_BATCH_SIZE && (p.logLevel ?? 'warn') === logLevel)),
    )

  for (const mode of WORKER_MODES) {
    const limit = mode === 'transaction' ? ceiling('claim-complete-1tx') : ceiling('lease-2tx')
    for (const workers of [...new Set(r.processing.map((p) => p.workers))].sort((a, b) => a - b)) {
      const ours = processing('ours', workers, mode)
      if (!ours) continue
      const gw = processing('graphile-worker', workers)
      rows.push([
        `process ${ours.jobs.toLocaleString('en')} preloaded, ${workers} process${workers > 1 ? 'es' : ''}, ${mode} mode (${describeBatches(DEFAULT_BATCH_SIZE)})`,
        rate(ours.rate, '/s') + flag(ours.exactlyOnce),
        rate(processing('pg-boss', workers)?.rate, '/s'),
        rate(gw?.rate, '/s'),
        limit ? `${limit.label}: ${rate(limit.rate, ' rows/s')}` : '',
        ratio(ours.rate, gw?.rate),
        ratio(ours.rate, limit?.rate),
        processingTarget(mode, workers, ours.rate, gw?.rate, limit?.rate),
      ])
      const info = processing('ours', workers, mode, 'info')
      if (info)
        rows.push([
          `the same at LOG_LEVEL=info (a line per order)`,
          rate(info.rate, '/s') + flag(info.exactlyOnce),
          '',
          '',
          '',
          ratio(info.rate, gw?.rate),
          ratio(info.rate, limit?.rate),
          target('>= 0.9x the warn figure', info.rate >= 0.9 * ours.rate, `${ratio(info.rate, ours.rate)} of warn`),
        ])
    }
  }

  const enqueue = (system: System, kind: 'single' | 'bulk', inFlight?: number) =>
    r.enqueue.find(
      (e) =>
        e.system === system &&
        e.kind === kind &&
        (system !== 'ours' || (e.label.startsWith('POST') && (inFlight === undefined || e.inFlight === inFlight))),
    )
  const single = {
    ours: enqueue('ours', 'single', ENQUEUE.singleInFlight),
    gw: enqueue('graphile-worker', 'single'),
    pb: enqueue('pg-boss', 'single'),
  }
  const insert = ceiling('insert')
  const errors = (e: EnqueueResult) => e.errors + e.non2xx
  if (single.ours) {
    const o = single.ours
    rows.push([
      `enqueue one job per call, ${ENQUEUE.singleInFlight} in flight (ours: POST /orders over HTTP)`,
      `${rate(o.rate, '/s')}, p50 ${o.latencyMs?.p50} / p99 ${o.latencyMs?.p99} ms, ${errors(o)} errors${flag(o.exactlyOnce)}`,
      rate(single.pb?.rate, '/s'),
      rate(single.gw?.rate, '/s'),
      insert ? `${insert.label}: ${rate(insert.rate, ' rows/s')}` : '',
      ratio(o.rate, single.gw?.rate),
      ratio(o.rate, insert?.rate),
      target(
        `>= 1.5x graphile-worker, 0 errors`,
        single.gw !== undefined && o.rate >= 1.5 * single.gw.rate && errors(o) === 0,
        single.gw ? `${ratio(o.rate, single.gw.rate)}, ${errors(o)} errors` : '',
      ),
    ])
  }
  const many = enqueue('ours', 'single', ENQUEUE.httpConnections)
  if (many) {
    rows.push([
      `POST /orders, ${ENQUEUE.httpConnections} connections (ours only: an api's real load)`,
      `${rate(many.rate, '/s')}, p50 ${many.latencyMs?.p50} / p99 ${many.latencyMs?.p99} ms, ${errors(many)} errors${flag(many.exactlyOnce)}`,
      '',
      '',
      '',
      '',
      ratio(many.rate, insert?.rate),
      target(
        'p99 < 25 ms, 0 errors',
        (many.latencyMs?.p99 ?? Infinity) < 25 && errors(many) === 0,
        `p99 ${many.latencyMs?.p99} ms`,
      ),
    ])
  }
  const bulk = { ours: enqueue('ours', 'bulk'), gw: enqueue('graphile-worker', 'bulk'), pb: enqueue('pg-boss', 'bulk') }
  if (bulk.ours) {
    rows.push([
      `bulk enqueue, ${ENQUEUE.bulkSize.toLocaleString('en')} per call, ${ENQUEUE.bulkInFlight} in flight (ours: POST /orders/batch)`,
      rate(bulk.ours.rate, '/s') + flag(bulk.ours.exactlyOnce),
      rate(bulk.pb?.rate, '/s'),
      rate(bulk.gw?.rate, '/s'),
      '',
      ratio(bulk.ours.rate, bulk.gw?.rate),
      '',
      target(
        '>= 1.0x graphile-worker',
        bulk.gw !== undefined && bulk.ours.rate >= bulk.gw.rate,
        ratio(bulk.ours.rate, bulk.gw?.rate),
      ),
    ])
  }
  const latency = (system: System) => r.latency.filter((l) => l.system === system)
  for (const ours of latency('ours')) {
    const p = (l: LatencyResult | undefined) => (l ? `${l.latencyMs.p50} / ${l.latencyMs.p99} ms` : '')
    rows.push([
      // The label's mode, and how the orders came: 'transaction mode, POST /orders to ...'.
      `pickup latency p50 / p99, ${ours.workers} idle workers, ${ours.submitted} jobs ${r.settings.latencyGapMs} ms apart (${ours.label.split(' to ')[0]})`,
      p(ours) + flag(ours.exactlyOnce),
      p(latency('pg-boss')[0]),
      p(latency('graphile-worker')[0]),
      '',
      '',
      '',
      pickupTarget(ours, latency('graphile-worker')[0]),
    ])
  }
  // The scale phase runs the history and delayed-backlog measures beside their empty-table twins, in
  // turn: compare means.
  const empties = r.scale.filter(
    (s) => s.historyRows === 0 && s.delayedRows === 0 && s.workers === r.settings.historyWorkers,
  )
  const beside = (what: string, runs: ProcessingResult[]) => {
    const first = runs[0]
    if (!first || empties.length === 0) return
    const withRate = Math.round(mean(runs.map((s) => s.rate)))
    const emptyRate = Math.round(mean(empties.map((s) => s.rate)))
    const change = (withRate / emptyRate - 1) * 100
    const means = runs.length > 1 ? `, means of ${runs.length} and ${empties.length} runs` : ''
    rows.push([
      `process with ${what} present, ${first.workers} processes`,
      `${rate(withRate, '/s')} (empty table: ${rate(emptyRate, '/s')}, ${change >= 0 ? '+' : ''}${round(change, 1)}%${means})` +
        flag(runs.find((s) => !s.exactlyOnce.ok)?.exactlyOnce ?? first.exactlyOnce),
      '',
      '',
      '',
      '',
      '',
      target('within 10% of the empty table', change >= -10, `${round(change, 1)}%`),
    ])
  }
  const histories = r.scale.filter((s) => s.historyRows > 0)
  beside(`${histories[0]?.historyRows.toLocaleString('en')} completed orders`, histories)
  const delayed = r.scale.filter((s) => s.delayedRows > 0)
  beside(`${delayed[0]?.delayedRows.toLocaleString('en')} delayed orders of higher priority`, delayed)
  return table(
    [
      'measure',
      'this project',
      `pg-boss ${v['pg-boss']}`,
      `graphile-worker ${v['graphile-worker']}`,
      'PostgreSQL ceiling',
      'ours / graphile-worker',
      'ours / ceiling',
      'target (issue 9)',
    ],
    rows,
    ['l', 'r', 'r', 'r', 'l', 'r', 'r', 'l'],
  )
}

/** Issue 9: p50 within 2 ms of graphile-worker's, p99 within twice its p99, same run. */
function pickupTarget(ours: LatencyResult, gw: LatencyResult | undefined): string {
  if (gw === undefined) return ''
  const met = ours.latencyMs.p50 <= gw.latencyMs.p50 + 2 && ours.latencyMs.p99 <= 2 * gw.latencyMs.p99
  return target(
    "p50 <= graphile-worker's + 2 ms, p99 <= 2x its p99",
    met,
    `p50 ${ours.latencyMs.p50}, p99 ${ours.latencyMs.p99} ms`,
  )
}

function processingTarget(
  mode: string,
  workers: number,
  ours: number,
  gw: number | undefined,
  limit: number | undefined,
): string {
  if (workers !== 3 || gw === undefined) return ''
  if (mode === 'transaction') return target('>= 1.0x graphile-worker (aim 1.2x)', ours >= gw, ratio(ours, gw))
  if (mode === 'lease') {
    const ceiling = limit === undefined ? '' : `, ${Math.round((100 * ours) / limit)}% of ceiling`
    return target('>= 0.7x graphile-worker', ours >= 0.7 * gw, `${ratio(ours, gw)}${ceiling}`)
  }
  return ''
}

function detailSections(r: BenchResults): string[] {
  const out: string[] = []
  out.push('', '## Processing, every run', '')
  out.push(
    ...table(
      [
        'system',
        'setting',
        'procs',
        'jobs',
        'first to last',
        'rate',
        'spawn to drained',
        'wall rate',
        'per process',
        'CPU cores: postgres / services / bench / other',
        'CPU µs per job: postgres / workers',
        'exactly once',
      ],
      r.processing.map(processingRow),
    ),
  )
  out.push(
    '',
    'CPU µs per job: the cores each side used from spawn to drained, times that time, over the jobs: the',
    "workers' figure includes their start-up (about 0.4 s of CPU per process of ours: loading its bundled entry, connecting).",
  )
  out.push(
    '',
    'First to last: ours from `min(completed_at)` to `max(completed_at)` read back with every order; the peers from the first to the last',
    "handler return across their processes (their completion is written right after). Spawn to drained includes each process's start-up.",
  )
  if (r.keys.length) out.push(...keysSection(r.keys))
  if (r.steady.runs.length) out.push(...steadySection(r.steady))
  out.push('', '## Scale (ours, default mode and batch)', '')
  const one = r.scale.find((s) => s.workers === 1 && s.historyRows === 0 && s.delayedRows === 0)
  out.push(
    ...table(
      [
        'procs',
        'completed rows present',
        'delayed rows present',
        'rate',
        'vs 1 process',
        'wall rate',
        'per process',
        'CPU cores: postgres / services / bench / other',
        'exactly once',
      ],
      r.scale.map((s) => [
        String(s.workers),
        s.historyRows.toLocaleString('en'),
        s.delayedRows.toLocaleString('en'),
        rate(s.rate, '/s'),
        ratio(s.rate, one?.rate),
        rate(s.wallRate, '/s'),
        perWorker(s.perWorker),
        cpu(s.cpu),
        once(s.exactlyOnce),
      ]),
    ),
  )
  out.push('', '## Enqueue', '')
  out.push(
    ...table(
      [
        'system',
        'call',
        'jobs',
        'seconds',
        'rate',
        'p50 ms',
        'p99 ms',
        'max ms',
        'errors',
        'non-2xx',
        'CPU cores: postgres / services / bench / other',
        'stored = acknowledged',
      ],
      r.enqueue.map(enqueueRow),
    ),
  )
  out.push(
    '',
    "Latency per call (for bulk: per 1,000 jobs). Ours under autocannon from this process; the peers' calls from this process's client.",
  )
  out.push('', '## Pickup latency', '')
  out.push(
    ...table(
      ['system', 'setup', 'jobs', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'exactly once'],
      r.latency.map((l) => [
        l.system,
        l.label,
        String(l.submitted),
        String(l.latencyMs.p50),
        String(l.latencyMs.p95),
        String(l.latencyMs.p99),
        String(l.latencyMs.max),
        once(l.exactlyOnce),
      ]),
    ),
  )
  out.push(
    '',
    "From just before the submitting call to the handler's (processor's) first line, clocks of two processes on one machine.",
  )
  const hopped = r.latency.filter((l) => l.hopsMs)
  if (hopped.length > 0) {
    out.push('', "Ours, hop by hop: milliseconds from the client's send to each hop (p50 / p99).", '')
    const hops = Object.keys(hopped[0]?.hopsMs ?? {})
    out.push(
      ...table(
        ['setup', ...hops],
        hopped.map((l) => [
          l.label.split(',')[0] ?? l.label,
          ...hops.map((hop) => `${l.hopsMs?.[hop]?.p50} / ${l.hopsMs?.[hop]?.p99}`),
        ]),
      ),
    )
  }
  out.push('', '## PostgreSQL ceiling (plain SQL, postgres.js, our schema)', '')
  out.push(
    ...table(
      ['pattern', 'clients', 'rows', 'seconds', 'rows/s', 'CPU cores: postgres / bench / other', 'check'],
      r.ceiling.map((c: CeilingResult) => [
        c.label,
        String(c.clients),
        c.rows.toLocaleString('en'),
        String(round(c.ms / 1000, 2)),
        rate(c.rate, ''),
        c.cpu ? `${c.cpu.postgres} / ${c.cpu.bench} / ${c.cpu.other}` : '',
        once(c.exactlyOnce),
      ]),
    ),
  )
  return out
}

function settingsSection(r: BenchResults): string[] {
  const m = r.machine
  return [
    '',
    '## Machine, server and settings',
    '',
    `- Machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}.`,
    `- Server: ${m.postgres}; ${Object.entries(m.postgresSettings)
      .map(([k, val]) => `${k}=${val}`)
      .join(', ')}. Embedded (devkit's startCluster), fresh database per measure, CHECKPOINT after each preload.`,
    `- This project: real entry points (services/worker/dist/main.js, services/api/dist/main.js), LOG_LEVEL=warn, WORKER_CRON='* * * * * *', WORKER_BATCH_SIZE ${DEFAULT_BATCH_SIZE} and WORKER_MAX_BATCH_SIZE ${DEFAULT_MAX_BATCH_SIZE} (the defaults: full claims double up to it) unless labelled, modes measured: ${WORKER_MODES.join(', ')}.`,
    `- graphile-worker ${m.peers['graphile-worker']}, per process: ${JSON.stringify(GRAPHILE_SETTINGS)}, logger silent; jobs added with WorkerUtils addJob/addJobs.`,
    `- pg-boss ${m.peers['pg-boss']}, per process: constructor ${JSON.stringify(PG_BOSS_SETTINGS.constructor)}, queue ${JSON.stringify(PG_BOSS_SETTINGS.queue)}, work() ${JSON.stringify(PG_BOSS_SETTINGS.work)}; jobs added with send/insert from an instance with supervise and schedule off.`,
    `- autocannon ${m.peers.autocannon}. Sizes: ${JSON.stringify(r.settings)}.`,
  ]
}

function processingRow(p: ProcessingResult): string[] {
  return [
    p.system,
    p.system === 'ours' ? p.label : 'documented high-throughput',
    String(p.workers),
    p.jobs.toLocaleString('en'),
    `${round(p.firstToLastMs / 1000, 2)} s`,
    rate(p.rate, '/s'),
    `${round(p.wallMs / 1000, 2)} s`,
    rate(p.wallRate, '/s'),
    perWorker(p.perWorker),
    cpu(p.cpu),
    p.cpu
      ? `${round((p.cpu.postgres * p.wallMs * 1000) / p.jobs, 1)} / ${round((p.cpu.services * p.wallMs * 1000) / p.jobs, 1)}`
      : '',
    once(p.exactlyOnce),
  ]
}

function enqueueRow(e: EnqueueResult): string[] {
  return [
    e.system,
    e.label,
    e.jobs.toLocaleString('en'),
    String(round(e.ms / 1000, 2)),
    rate(e.rate, '/s'),
    String(e.latencyMs?.p50 ?? ''),
    String(e.latencyMs?.p99 ?? ''),
    String(e.latencyMs?.max ?? ''),
    String(e.errors),
    String(e.non2xx),
    cpu(e.cpu),
    once(e.exactlyOnce),
  ]
}

/**
 * Per-key FIFO: each keyed run beside the unkeyed run of its system and mode just before it (the
 * same round), so the ratio compares runs minutes apart.
 */
function keysSection(runs: readonly ProcessingResult[]): string[] {
  const unkeyed = new Map<string, ProcessingResult>()
  const rows = runs.map((p) => {
    const kind = `${p.system} ${p.mode ?? ''}`
    if (!p.keys) unkeyed.set(kind, p)
    const base = unkeyed.get(kind)
    return [
      p.system,
      p.label,
      p.keys ? p.keys.toLocaleString('en') : 'none',
      p.jobs.toLocaleString('en'),
      rate(p.rate, '/s'),
      p.keys ? ratio(p.rate, base?.rate) : '',
      once(p.exactlyOnce),
    ]
  })
  return [
    '',
    `## Per-key FIFO (${runs[0]?.workers ?? 0} processes; ours: orderingKeys; graphile-worker: named job queues)`,
    '',
    ...table(['system', 'setting', 'keys', 'jobs', 'rate', 'vs unkeyed, same round', 'exactly once'], rows),
    '',
    "One key's orders run one at a time, in order, across every process: with one key the rate is one order's",
    'claim, processing and completion after another. Ours also checks each key completed in id order. graphile-worker',
    'runs its named-queue measures without its local queue, which breaks their serial guarantee (graphile/worker#621).',
  ]
}

/**
 * Steady state: what each system carried, then per processor and rate a row per system (the whole
 * run, and whether its p99 stayed flat), the targets against graphile-worker at 90%, and every
 * run's windows.
 */
function steadySection({ probes, runs }: BenchResults['steady']): string[] {
  const name = (x: { system: string; mode?: string; via?: string }) =>
    `${x.system}${x.mode ? ` ${x.mode}${x.via === 'sql' ? ', submit_order()' : ''}` : ''}`
  const p99 = (l: LatencySummary | undefined) => l?.p99 ?? Number.NaN
  const flatness = (x: SteadyResult) => round(p99(x.windows.at(-1)?.startMs) / p99(x.windows[1]?.startMs), 2)
  const out = [
    '',
    `## Steady state, open loop (${runs[0]?.seconds} s per run, 3 worker processes each)`,
    '',
    'Orders are due on a fixed schedule whatever the answers; latency counts from when each was due, so a slow',
    'answer cannot hide its own cost. Ours is submitted with POST /orders (HTTP included), the peers with their',
    "client's one-job call; ours once more with submit_order() in the client's own transaction, as they do. *start*: due to processor start; *completion*: due to the completion's write, where the",
    'system keeps it (graphile-worker deletes the row). The totals leave out the first window (start-up: connections',
    "opening, code not yet optimized); the windows below show it. Flat: last window's p99 to the second's (target <= 1.5).",
    '',
    ...table(
      ['system', 'processor', 'carried (probe)', 'submitted'],
      probes.map((p) => [name(p), p.processor, rate(p.rate, '/s'), rate(p.submitted, '/s')]),
    ),
    '',
    ...table(
      [
        'system',
        'processor',
        'rate',
        'in',
        'to start p50 / p99 / p99.9 / max',
        'to completion p99',
        'flat',
        'backlog max',
        'bytes first / last window',
        'autovacuums',
        'checkpoints',
        'claim buffers/call',
        'claims/order',
        'errors',
        'exactly once',
      ],
      runs.map((x) => [
        `${name(x)}${x.historyRows ? ' (retention)' : ''}`,
        x.processor,
        `${rate(x.rate, '/s')} (${Math.round(x.share * 100)}%)`,
        x.windows.reduce((n, w) => n + w.in, 0).toLocaleString('en'),
        `${x.startMs.p50} / ${x.startMs.p99} / ${x.startMs.p999} / ${x.startMs.max} ms`,
        x.completedMs ? `${x.completedMs.p99} ms` : 'n/a',
        `${flatness(x)}`,
        Math.max(...x.windows.map((w) => w.backlog)).toLocaleString('en'),
        `${mib(x.windows[0]?.bytes)} / ${mib(x.windows.at(-1)?.bytes)} MiB`,
        String(x.windows.reduce((n, w) => n + w.autovacuums, 0)),
        String(x.windows.reduce((n, w) => n + w.checkpoints, 0)),
        String(median(x.windows.map((w) => w.claimBuffersPerCall).filter((b) => b !== undefined)) ?? ''),
        String(median(x.windows.map((w) => w.claimsPerOrder).filter((c) => c !== undefined)) ?? ''),
        String(x.errors),
        once(x.exactlyOnce),
      ]),
    ),
    '',
    ...steadyTargets(runs, flatness),
  ]
  for (const x of runs) {
    out.push(
      '',
      `### ${name(x)}, ${x.processor}, ${rate(x.rate, '/s')} (${Math.round(x.share * 100)}%)${x.historyRows ? `, ${x.historyRows.toLocaleString('en')} history rows under retention` : ''}`,
      '',
      ...table(
        [
          'window end',
          'in',
          'started',
          'to start p50 / p99 / p99.9 / max',
          'to completion p50 / p99 / p99.9 / max',
          'backlog',
          'claim buffers/call',
          'claims/order',
          'MiB',
          'dead tuples',
          'autovacuums',
          'checkpoints',
        ],
        x.windows.map((w) => [
          `${w.endsAtSecond} s`,
          w.in.toLocaleString('en'),
          w.started.toLocaleString('en'),
          `${w.startMs.p50} / ${w.startMs.p99} / ${w.startMs.p999} / ${w.startMs.max}`,
          w.completedMs
            ? `${w.completedMs.p50} / ${w.completedMs.p99} / ${w.completedMs.p999} / ${w.completedMs.max}`
            : 'n/a',
          w.backlog.toLocaleString('en'),
          String(w.claimBuffersPerCall ?? ''),
          String(w.claimsPerOrder ?? ''),
          mib(w.bytes),
          w.deadTuples.toLocaleString('en'),
          String(w.autovacuums),
          String(w.checkpoints),
        ]),
      ),
      '',
      `Longest wait of a due order for a free call: ${x.longestSendWaitMs} ms. CPU cores (postgres / services / bench / other): ${cpu(x.cpu)}.`,
    )
  }
  return out
}

/** Issue 23's steady-state targets, per processor: at 90%, ours' p99 to start against graphile-worker's, and flat; retention bounded. */
function steadyTargets(runs: readonly SteadyResult[], flatness: (x: SteadyResult) => number): string[] {
  const lines: string[] = []
  const top = Math.max(...runs.map((x) => x.share))
  for (const x of runs.filter((r) => r.system === 'ours' && r.share === top && !r.historyRows)) {
    const how = x.via === 'sql' ? ', submit_order()' : ', POST /orders'
    const gw = runs.find((r) => r.system === 'graphile-worker' && r.processor === x.processor && r.share === top)
    const ours = x.startMs.p99
    lines.push(
      `- ${x.mode} mode${how}, ${x.processor}, ${rate(x.rate, '/s')}: ` +
        target(
          "p99 to start <= graphile-worker's",
          gw !== undefined && ours <= gw.startMs.p99,
          `${ours} vs ${gw?.startMs.p99} ms`,
        ) +
        '; ' +
        target('flat', flatness(x) <= 1.5, `${flatness(x)}`),
    )
  }
  const retained = runs.find((r) => r.historyRows)
  if (retained) {
    // Bounded: once retention's deletes are vacuumed, new orders reuse their space; a table with
    // none to reuse grows by what every order takes (about 2 MiB a minute at 200 orders a second).
    const first = retained.windows[0]?.bytes ?? 0
    const last = retained.windows.at(-1)?.bytes ?? 0
    const stored = retained.windows.slice(1).reduce((n, w) => n + w.in, 0)
    lines.push(
      `- with retention: ${target(
        'table and indexes bounded (under 1% growth after the first window)',
        last < first * 1.01,
        `${mib(first)} -> ${mib(last)} MiB while ${stored.toLocaleString('en')} more orders were stored`,
      )}`,
    )
  }
  return lines
}

function mib(bytes: number | undefined): string {
  return bytes === undefined ? '' : String(round(bytes / 2 ** 20, 1))
}

function median(values: readonly number[]): number | undefined {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

function table(header: string[], rows: string[][], align?: ('l' | 'r')[]): string[] {
  const rule = header.map((_, i) => (align?.[i] === 'r' ? '---:' : '---'))
  return [header, rule, ...rows].map((cells) => `| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`)
}

function rate(value: number | undefined, unit: string): string {
  return value === undefined || Number.isNaN(value) ? '' : `${value.toLocaleString('en')}${unit}`
}

function ratio(ours: number | undefined, other: number | undefined): string {
  return ours === undefined || !other ? '' : `${round(ours / other, 2)}x`
}

function target(goal: string, met: boolean, measured: string): string {
  return `${goal}: ${met ? 'met' : `NOT met (${measured})`}`
}

function flag(check: ExactlyOnce): string {
  return check.ok ? '' : ' (EXACTLY-ONCE FAILED)'
}

function once(check: ExactlyOnce): string {
  return check.ok ? 'yes' : `NO: ${check.problems.join('; ')}`
}

function cpu(use: CpuUse | undefined): string {
  return use ? `${use.postgres} / ${use.services} / ${use.bench} / ${use.other}` : ''
}

function perWorker(counts: Record<string, number>): string {
  return Object.values(counts)
    .map((n) => n.toLocaleString('en'))
    .join(' / ')
}
