import { randomBytes } from 'node:crypto'
import os from 'node:os'
import type { RetryPolicy } from '@postgres-queue/db'
import { ConfigError, commonEnv, type LoggerConfig, parseEnv } from '@postgres-queue/runtime'
import { validate as isValidCron } from 'node-cron'
import Type, { type Static } from 'typebox'

export const WorkerEnv = Type.Object({
  ...commonEnv,
  WORKER_PROCESSOR: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'A module (a path, or a package name) whose `processor` or default export processes the orders, in place of the one the entry point gives',
    }),
  ),
  WORKER_NAME: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 100,
      description:
        'A stable name for this worker (a replica, a pod): the worker label of its metrics; default the hostname',
    }),
  ),
  WORKER_ID: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 128,
      description: 'Name in logs and completed_by, unique per process; default WORKER_NAME-pid-random',
    }),
  ),
  WORKER_CRON: Type.String({
    default: '*/5 * * * * *',
    description: 'node-cron schedule of drain ticks (six fields: seconds first)',
  }),
  WORKER_JITTER_MS: Type.Integer({
    minimum: 0,
    maximum: 60_000,
    default: 500,
    description: 'Random delay before each tick, so replicas do not poll in lockstep',
  }),
  WORKER_MODE: Type.Union([Type.Literal('transaction'), Type.Literal('lease')], {
    default: 'transaction',
    description: 'transaction: one short transaction per batch; lease: claims commit at once, for slow processors',
  }),
  WORKER_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 50,
    description: "Orders a drain's first claim takes",
  }),
  WORKER_MAX_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 200,
    description:
      'A claim that comes back full doubles the next, up to this: a deep queue is taken in fewer, larger batches (never below WORKER_BATCH_SIZE)',
  }),
  WORKER_BATCHES_IN_FLIGHT: Type.Integer({
    minimum: 1,
    maximum: 16,
    default: 2,
    description:
      'The most batches a worker runs at once, each in its own transaction: one is processed while another waits on the database (in transaction mode, one while other workers are alive and processing is quicker than settling)',
  }),
  WORKER_LEASE_MS: Type.Integer({
    minimum: 100,
    maximum: 3_600_000,
    default: 30_000,
    description:
      "Lease mode: how long a claim lasts unless heartbeats extend it; a dead worker's orders return after it",
  }),
  WORKER_CONCURRENCY: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 10,
    description: 'Lease mode: orders of a batch processed at once',
  }),
  WORKER_RETRY_BASE_MS: Type.Integer({
    minimum: 0,
    maximum: 86_400_000,
    default: 1000,
    description: 'Backoff before the first retry; doubles per attempt, with jitter',
  }),
  WORKER_RETRY_MAX_MS: Type.Integer({
    minimum: 0,
    maximum: 86_400_000,
    default: 300_000,
    description: 'Longest backoff between retries',
  }),
  WORKER_ORDER_TIMEOUT_MS: Type.Integer({
    minimum: 10,
    maximum: 600_000,
    default: 10_000,
    description: 'Longest one order may take in the processor before it fails',
  }),
  WORKER_BATCH_TIMEOUT_MS: Type.Integer({
    minimum: 10,
    maximum: 3_600_000,
    default: 30_000,
    description: 'Time budget of one batch transaction; orders not started within it are left for the next claim',
  }),
  WORKER_HEARTBEAT_MS: Type.Integer({
    minimum: 100,
    maximum: 300_000,
    default: 5000,
    description: 'How often the worker reports itself and its counts to the workers table',
  }),
  RETENTION_DAYS: Type.Integer({
    minimum: 1,
    maximum: 36_500,
    default: 7,
    description: 'Completed and cancelled orders older than this are deleted; failed ones are kept',
  }),
  IDEMPOTENCY_KEY_DAYS: Type.Integer({
    minimum: 1,
    maximum: 36_500,
    default: 30,
    description:
      'How long an Idempotency-Key is remembered; longer while any order it stored exists, whatever its status; at least RETENTION_DAYS',
  }),
  RETENTION_CRON: Type.String({
    default: '0 */5 * * * *',
    description: 'node-cron schedule of the retention job (one worker at a time runs it)',
  }),
  RETENTION_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 100_000,
    default: 1000,
    description: 'Orders deleted per retention transaction',
  }),
  METRICS_PORT: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 65535, description: 'Serve Prometheus metrics on this port; off when unset' }),
  ),
  WORKER_SHUTDOWN_TIMEOUT_MS: Type.Integer({
    minimum: 0,
    maximum: 600_000,
    default: 10_000,
    description: 'On SIGTERM, how long the batch in hand may take to finish before it is rolled back',
  }),
})

type WorkerMode = 'transaction' | 'lease'

export interface WorkerConfig {
  databaseUrl: string
  /** Stable across restarts: the `worker` label of its metrics. */
  workerName: string
  /** The PostgreSQL schema the queue lives in. */
  databaseSchema: string
  workerId: string
  mode: WorkerMode
  cron: string
  jitterMs: number
  batchSize: number
  /** Claims grow to this while they come back full; at least batchSize. */
  maxBatchSize: number
  batchesInFlight: number
  leaseMs: number
  concurrency: number
  retry: RetryPolicy
  orderTimeoutMs: number
  batchTimeoutMs: number
  shutdownTimeoutMs: number
  heartbeatMs: number
  retentionDays: number
  idempotencyKeyDays: number
  retentionCron: string
  retentionBatchSize: number
  /** Undefined: no metrics server. */
  metricsPort: number | undefined
  /** The module to load the processor from (WORKER_PROCESSOR); undefined: the entry point's. */
  processorModule: string | undefined
  log: LoggerConfig
}

/** What the default name and id are made of. */
export interface Host {
  hostname: string
  pid: number
  /** Random: the id is unique even where every container's process is pid 7 and a restart keeps the hostname. */
  instance: string
}

const thisHost = (): Host => ({ hostname: os.hostname(), pid: process.pid, instance: randomBytes(2).toString('hex') })

/** Reads and validates the worker's environment once, at start-up; throws a ConfigError naming every bad variable. */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  host: Host = thisHost(),
): Readonly<WorkerConfig> {
  const e = parseEnv(WorkerEnv, env)
  checkRelations(e)
  const workerName = e.WORKER_NAME ?? host.hostname
  const workerId = e.WORKER_ID ?? `${workerName}-${host.pid}-${host.instance}`
  return Object.freeze({
    databaseUrl: e.DATABASE_URL,
    workerName,
    databaseSchema: e.DATABASE_SCHEMA,
    workerId,
    mode: e.WORKER_MODE,
    cron: e.WORKER_CRON,
    jitterMs: e.WORKER_JITTER_MS,
    batchSize: e.WORKER_BATCH_SIZE,
    maxBatchSize: Math.max(e.WORKER_MAX_BATCH_SIZE, e.WORKER_BATCH_SIZE),
    batchesInFlight: e.WORKER_BATCHES_IN_FLIGHT,
    leaseMs: e.WORKER_LEASE_MS,
    concurrency: e.WORKER_CONCURRENCY,
    retry: { baseMs: e.WORKER_RETRY_BASE_MS, maxMs: e.WORKER_RETRY_MAX_MS },
    orderTimeoutMs: e.WORKER_ORDER_TIMEOUT_MS,
    batchTimeoutMs: e.WORKER_BATCH_TIMEOUT_MS,
    shutdownTimeoutMs: e.WORKER_SHUTDOWN_TIMEOUT_MS,
    heartbeatMs: e.WORKER_HEARTBEAT_MS,
    retentionDays: e.RETENTION_DAYS,
    idempotencyKeyDays: e.IDEMPOTENCY_KEY_DAYS,
    retentionCron: e.RETENTION_CRON,
    retentionBatchSize: e.RETENTION_BATCH_SIZE,
    metricsPort: e.METRICS_PORT,
    processorModule: e.WORKER_PROCESSOR,
    log: { level: e.LOG_LEVEL, format: e.LOG_FORMAT, base: { service: 'worker', workerId } },
  })
}

/** What each variable's schema cannot say alone: cron syntax, and bounds between variables. */
function checkRelations(e: Static<typeof WorkerEnv>): void {
  for (const name of ['WORKER_CRON', 'RETENTION_CRON'] as const) {
    if (!isValidCron(e[name])) {
      throw new ConfigError([`${name}=${JSON.stringify(e[name])} is not a valid node-cron expression`])
    }
  }
  if (e.WORKER_ORDER_TIMEOUT_MS > e.WORKER_BATCH_TIMEOUT_MS) {
    throw new ConfigError([
      `WORKER_ORDER_TIMEOUT_MS=${e.WORKER_ORDER_TIMEOUT_MS} must not exceed WORKER_BATCH_TIMEOUT_MS=${e.WORKER_BATCH_TIMEOUT_MS}`,
    ])
  }
  if (e.WORKER_RETRY_BASE_MS > e.WORKER_RETRY_MAX_MS) {
    throw new ConfigError([
      `WORKER_RETRY_BASE_MS=${e.WORKER_RETRY_BASE_MS} must not exceed WORKER_RETRY_MAX_MS=${e.WORKER_RETRY_MAX_MS}`,
    ])
  }
  if (e.IDEMPOTENCY_KEY_DAYS < e.RETENTION_DAYS) {
    throw new ConfigError([
      `IDEMPOTENCY_KEY_DAYS=${e.IDEMPOTENCY_KEY_DAYS} must be at least RETENTION_DAYS=${e.RETENTION_DAYS}: a key must outlive the orders retention deletes (it outlives scheduled, pending and failed ones anyway: it is kept while any of its orders exists)`,
    ])
  }
}
