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

/** One window of a steady-state run (a minute, or a quarter of a shorter run). */
export interface SteadyWindow {
  /** Seconds from the load's start to the window's end. */
  endsAtSecond: number
  /** Orders due in the window and acknowledged. */
  in: number
  /** Processor starts in the window (first starts). */
  started: number
  /** From due to processor start, and to the completion's write, of the orders due in the window. */
  startMs: LatencySummary
  completedMs?: LatencySummary
  /** Acknowledged, not yet started, at the window's end. */
  backlog: number
  /** Shared buffers per call of the statements with SKIP LOCKED (the claims) during the window. */
  claimBuffersPerCall?: number
  /**
   * Those calls per order started: above 1, claims that found nothing or only part of what was
   * there (every idle worker woken by one order's notification claims).
   */
  claimsPerOrder?: number
  /** The system's tables and indexes, at the window's end. */
  bytes: number
  deadTuples: number
  /** During the window: autovacuum runs on the system's tables; checkpoints (server-wide). */
  autovacuums: number
  checkpoints: number
}

export interface SteadyResult {
  system: System
  mode?: string
  /** Ours: submitted over HTTP or with submit_order(). */
  via?: 'http' | 'sql'
  label: string
  /** 'no-op' or 'waits 20 ms'. */
  processor: string
  /** The rate as a share of the highest all systems carried in the probe, and the rate. */
  share: number
  rate: number
  seconds: number
  /** Completed orders in the table at the start, which retention deletes during the run. */
  historyRows: number
  /** Submissions that failed. */
  errors: number
  /** The longest a due order waited for a free call: more than a few ms, and the load was not open. */
  longestSendWaitMs: number
  windows: SteadyWindow[]
  /** The run past its first window (the warm-up). completedMs is absent where the system keeps no completion time. */
  startMs: LatencySummary
  completedMs?: LatencySummary
  exactlyOnce: ExactlyOnce
  cpu?: CpuUse
}

/** The rate a system carried in the steady-state probe (closed loop of one-job calls while it processes). */
export interface SteadyProbe {
  system: System
  mode?: string
  via?: 'http' | 'sql'
  processor: string
  /** Processor starts per second over the probe's last two thirds. */
  rate: number
  /**
   * Calls per second over the whole probe: near `rate`, submitting bounded it; above, processing did.
   * Absent when BENCH_STEADY_CARRIED set the rate instead of a probe.
   */
  submitted?: number
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
  /** Steady state, open loop (phases/steady.ts). */
  steady: { probes: SteadyProbe[]; runs: SteadyResult[] }
}
