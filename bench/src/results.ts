import type { CpuUse } from './cpu.js'
import type { LatencySummary } from './stats.js'

export type System = 'ours' | 'pg-boss' | 'graphile-worker'

/** Whether a phase saw every job handled exactly once, and how it knows. */
export interface ExactlyOnce {
  ok: boolean
  /** What was checked, e.g. "all rows completed with attempts = 1". */
  how: string
  problems: string[]
}

export interface ProcessingResult {
  system: System
  /** e.g. "transaction mode, batch 50". */
  label: string
  mode?: string
  batchSize?: number
  /** Ours: the workers' LOG_LEVEL (warn unless the measure is of info's cost). */
  logLevel?: string
  workers: number
  jobs: number
  /** Completed rows already in the table before the run (the history measure). */
  historyRows: number
  /** Scheduled (not yet due) orders of a higher priority in the table beside the due ones. */
  delayedRows: number
  /** Ours: orderingKeys the orders were spread over; graphile-worker: named job queues. None if absent. */
  keys?: number
  /** First to last completion; `timing` says how each system's instants were taken. */
  firstToLastMs: number
  rate: number
  timing: string
  /** From spawning the worker processes until nothing was left: includes their start-up. */
  wallMs: number
  wallRate: number
  /** Jobs each worker process completed, by worker id. */
  perWorker: Record<string, number>
  exactlyOnce: ExactlyOnce
  cpu?: CpuUse
}

export interface EnqueueResult {
  system: System
  /** e.g. "POST /orders, autocannon, 64 connections". */
  label: string
  kind: 'single' | 'bulk'
  inFlight: number
  perCall: number
  /** Jobs accepted in the measured window (warm-up excluded). */
  jobs: number
  ms: number
  rate: number
  latencyMs?: { p50: number; p99: number; max: number }
  errors: number
  non2xx: number
  exactlyOnce: ExactlyOnce
  cpu?: CpuUse
}

export interface LatencyResult {
  system: System
  label: string
  workers: number
  submitted: number
  latencyMs: LatencySummary
  /**
   * Ours: milliseconds from the client's send to each hop on the way to the handler (the insert's
   * statement start, the api's answer, a NOTIFY reaching a listener, the handler's start).
   */
  hopsMs?: Record<string, LatencySummary>
  exactlyOnce: ExactlyOnce
}

export interface CeilingResult {
  /** 'claim-complete-1tx' | 'lease-2tx' | 'insert' | 'insert-notify' */
  pattern: string
  label: string
  clients: number
  rows: number
  ms: number
  rate: number
  exactlyOnce: ExactlyOnce
  cpu?: CpuUse
}

export interface MachineInfo {
  cpus: number
  cpuModel: string
  memoryGiB: number
  /** CPU other processes used in the seconds before the first measure (see cpu.ts's `other`). */
  otherCoresAtStart: number | undefined
  os: string
  node: string
  postgres: string
  postgresSettings: Record<string, string>
  peers: Record<string, string>
}

export interface BenchResults {
  startedAt: string
  quick: boolean
  durationSeconds: number
  machine: MachineInfo
  settings: Record<string, unknown>
  ceiling: CeilingResult[]
  processing: ProcessingResult[]
  /** Per-key FIFO: ours keyed and unkeyed beside graphile-worker's named queues (phases/keys.ts). */
  keys: ProcessingResult[]
  scale: ProcessingResult[]
  enqueue: EnqueueResult[]
  latency: LatencyResult[]
}
