/**
 * Every knob of a run in one place: the sizes (full or quick), the worker modes measured, and each
 * peer's settings, which the report prints verbatim.
 */
import { loadConfig } from '@postgres-queue/worker'

/**
 * The worker's processing modes, as `WORKER_MODE` names them in services/worker/src/config.ts:
 * every processing and latency measure runs once per mode. Lease mode runs with the worker's
 * defaults for its own knobs (WORKER_CONCURRENCY, WORKER_LEASE_MS).
 */
export const WORKER_MODES = ['transaction', 'lease'] as const
export type WorkerMode = (typeof WORKER_MODES)[number]

/** The worker's own configuration with nothing set but the database: its defaults, as it reads them. */
const workerDefaults = loadConfig({ DATABASE_URL: 'postgres://unused' })
/** The worker's own default (WORKER_BATCH_SIZE), measured in every run. */
export const DEFAULT_BATCH_SIZE = workerDefaults.batchSize
/** WORKER_MAX_BATCH_SIZE's default, left as it is: claims that come back full grow to it. */
export const DEFAULT_MAX_BATCH_SIZE = workerDefaults.maxBatchSize

/** How a run's batches are sized, as the worker sizes them. */
export function describeBatches(batchSize: number): string {
  return batchSize < DEFAULT_MAX_BATCH_SIZE
    ? `batch ${batchSize} growing to ${DEFAULT_MAX_BATCH_SIZE}`
    : `batch ${batchSize}`
}

export interface Sizes {
  /** Orders (jobs) preloaded for each processing run. */
  processingOrders: number
  /** Worker processes in the processing comparison with the peers. */
  processingWorkers: number[]
  /**
   * Extra batch sizes for our worker, measured with 3 processes besides the default: a labelled row
   * in the details, to show what the knob is worth.
   */
  extraBatchSizes: number[]
  /** Our worker processes in the scaling curve. */
  scaleWorkers: number[]
  /** Completed orders already in the table for the history run. */
  historyRows: number
  /** Scheduled orders of a higher priority, due tomorrow, beside the due backlog in the delayed-backlog run. */
  delayedRows: number
  /** Workers in the history run (and the empty-table run it is compared with). */
  historyWorkers: number
  /** Length of each enqueue measure. */
  enqueueSeconds: number
  /** Orders submitted one at a time in the pickup latency measure, and the gap between them. */
  latencyOrders: number
  latencyGapMs: number
  /** Length of the insert ceiling loops (the claim loops run until the preload is drained). */
  ceilingInsertSeconds: number
  /**
   * Orders spread over 1,000 keys, and of one hot key (strictly sequential): fewer than the
   * processing runs', since graphile-worker's named queues drain at a few hundred jobs a second.
   */
  keyedOrders: number
  hotKeyOrders: number
  /** Rounds of the keys phase. */
  keyRounds: number
  /**
   * Each steady-state run's length; unset, two checkpoint_timeout periods and a minute (11 minutes on
   * PostgreSQL's defaults, so every run crosses two timed checkpoints). BENCH_STEADY_SECONDS sets it.
   */
  steadySeconds: number | undefined
  /** Each steady-state probe's length. */
  steadyProbeSeconds: number
  /**
   * The rate the steady-state shares are taken of, instead of probing for it (BENCH_STEADY_CARRIED):
   * to run two commits at the same rates, alternating.
   */
  steadyCarriedRate: number | undefined
}

export const FULL: Sizes = {
  processingOrders: 100_000,
  processingWorkers: [1, 3],
  extraBatchSizes: [200],
  scaleWorkers: [1, 2, 3, 6],
  historyRows: 1_000_000,
  delayedRows: 200_000,
  historyWorkers: 3,
  enqueueSeconds: 10,
  latencyOrders: 500,
  latencyGapMs: 20,
  ceilingInsertSeconds: 8,
  keyedOrders: 20_000,
  hotKeyOrders: 1_000,
  keyRounds: 2,
  steadySeconds: optionalSeconds(process.env.BENCH_STEADY_SECONDS),
  steadyProbeSeconds: 15,
  steadyCarriedRate: optionalNumber(process.env.BENCH_STEADY_CARRIED),
}

/** A smoke run (`BENCH_QUICK=1` or `--quick`): every code path in about two minutes, numbers meaningless. */
export const QUICK: Sizes = {
  processingOrders: 5_000,
  processingWorkers: [1, 3],
  extraBatchSizes: [200],
  scaleWorkers: [1, 2],
  historyRows: 50_000,
  delayedRows: 10_000,
  historyWorkers: 2,
  enqueueSeconds: 2,
  latencyOrders: 40,
  latencyGapMs: 20,
  ceilingInsertSeconds: 2,
  keyedOrders: 2_000,
  hotKeyOrders: 200,
  keyRounds: 1,
  steadySeconds: optionalSeconds(process.env.BENCH_STEADY_SECONDS) ?? 20,
  steadyProbeSeconds: 5,
  steadyCarriedRate: optionalNumber(process.env.BENCH_STEADY_CARRIED),
}

function optionalSeconds(value: string | undefined): number | undefined {
  const seconds = optionalNumber(value)
  if (seconds !== undefined && seconds < 8) throw new Error(`BENCH_STEADY_SECONDS must be 8 or more: ${value}`)
  return seconds
}

/** A whole number above 0 from the environment, or undefined when unset. */
function optionalNumber(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new Error(`expected a whole number above 0, got ${value}`)
  return n
}

/** The concurrency of each enqueue measure, as issue 4 sets them. */
export const ENQUEUE = {
  /** autocannon connections on POST /orders. */
  httpConnections: 64,
  /** Calls in flight for the peers' one-call-per-job enqueue. */
  singleInFlight: 8,
  /** Orders (jobs) per bulk call, and bulk calls in flight. */
  bulkSize: 1000,
  bulkInFlight: 4,
} as const

/** graphile-worker's published high-throughput settings (worker.graphile.org/docs/performance), per process. */
export const GRAPHILE_SETTINGS = {
  concurrentJobs: 24,
  maxPoolSize: 25,
  localQueue: { size: 500 },
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
} as const

/** pg-boss's settings behind issue 4's numbers (picked by a sweep there), per process. */
export const PG_BOSS_SETTINGS = {
  constructor: { useListenNotify: true },
  queue: { notify: true },
  work: { batchSize: 200, localConcurrency: 4, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 },
} as const

/** One queue (pg-boss) and one task (graphile-worker) carry every job of the benchmark. */
export const PEER_QUEUE = 'bench'

/** Server settings for the benchmark's cluster: durable commits, as production runs. */
const SERVER_SETTINGS = {
  shared_buffers: '1GB',
  fsync: 'on',
  synchronous_commit: 'on',
  // 3 graphile-worker processes hold up to 25 connections each, 6 of our workers 2 each, plus the
  // api's pool, the ceiling's clients and the bench's own.
  max_connections: 200,
  // The steady-state phase reads each system's claim buffers per call from it.
  shared_preload_libraries: 'pg_stat_statements',
} as const

/**
 * The PostgreSQL configurations a run can use (`--pg=NAME`, or BENCH_PG): `default` is PostgreSQL's
 * own checkpoint and autovacuum settings; `queue` is set for a queue's churn, as a team running one
 * would (WAL room for minutes of writes, checkpoints far apart, autovacuum every 10 s and early).
 */
export const SERVER_PROFILES = {
  default: SERVER_SETTINGS,
  queue: {
    ...SERVER_SETTINGS,
    max_wal_size: '8GB',
    checkpoint_timeout: '15min',
    autovacuum_naptime: '10s',
    autovacuum_vacuum_scale_factor: '0.05',
    autovacuum_analyze_scale_factor: '0.05',
  },
} as const satisfies Record<string, Record<string, string | number>>
export type ServerProfile = keyof typeof SERVER_PROFILES

/** Other processes' CPU (cores) above which the report warns that its figures were taken on a busy machine. */
export const BUSY_MACHINE_CORES = 0.2
