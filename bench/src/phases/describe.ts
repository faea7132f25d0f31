import type { CpuUse } from '../cpu.js'
import type {
  CeilingResult,
  EnqueueResult,
  ExactlyOnce,
  LatencyResult,
  ProcessingResult,
  SteadyResult,
} from '../results.js'
import type { LatencySummary } from '../stats.js'

/** One progress line per measure, as the run goes. */
export function describeProcessing(r: ProcessingResult): string {
  const history =
    (r.historyRows ? `, ${r.historyRows.toLocaleString('en')} completed rows present` : '') +
    (r.delayedRows ? `, ${r.delayedRows.toLocaleString('en')} delayed rows of higher priority present` : '')
  return (
    `processing ${r.system} (${r.label}${history}), ${r.workers} proc: ${r.rate.toLocaleString('en')}/s ` +
    `first-to-last, ${r.wallRate.toLocaleString('en')}/s wall${cpu(r.cpu)}${verdict(r.exactlyOnce)}`
  )
}

export function describeEnqueue(r: EnqueueResult): string {
  const latency = r.latencyMs ? `, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms` : ''
  return (
    `enqueue ${r.system} (${r.label}): ${r.rate.toLocaleString('en')}/s${latency}, ` +
    `errors ${r.errors}, non-2xx ${r.non2xx}${cpu(r.cpu)}${verdict(r.exactlyOnce)}`
  )
}

export function describeLatency(r: LatencyResult): string {
  const l = r.latencyMs
  return `latency ${r.system} (${r.label}): p50 ${l.p50} p95 ${l.p95} p99 ${l.p99} max ${l.max} ms${verdict(r.exactlyOnce)}`
}

export function describeCeiling(r: CeilingResult): string {
  return `ceiling ${r.label}: ${r.rate.toLocaleString('en')} rows/s${cpu(r.cpu)}${verdict(r.exactlyOnce)}`
}

export function describeSteady(r: SteadyResult): string {
  const second = r.windows[1]?.startMs.p99
  const last = r.windows.at(-1)?.startMs.p99
  const completed = r.completedMs ? `; to completion ${tail(r.completedMs)}` : ''
  return (
    `steady ${r.system}${r.mode ? ` ${r.mode} mode via ${r.via}` : ''} (${r.processor}, ${r.rate.toLocaleString('en')}/s = ` +
    `${Math.round(r.share * 100)}%${r.historyRows ? ', retention' : ''}, ${r.seconds} s): to start ${tail(r.startMs)}${completed}; ` +
    `p99 second window ${second} ms, last ${last} ms; backlog at end ${r.windows.at(-1)?.backlog}; ` +
    `${r.errors} errors${cpu(r.cpu)}${verdict(r.exactlyOnce)}`
  )
}

/** p50 / p99 / p99.9 / max, in ms. */
function tail(l: LatencySummary): string {
  return `${l.p50} / ${l.p99} / ${l.p999} / ${l.max} ms`
}

function cpu(use: CpuUse | undefined): string {
  return use
    ? ` [cpu cores: postgres ${use.postgres}, services ${use.services}, bench ${use.bench}, other ${use.other}]`
    : ''
}

function verdict(check: ExactlyOnce): string {
  return check.ok ? '' : ` EXACTLY-ONCE FAILED: ${check.problems.join('; ')}`
}
