import { Writable } from 'node:stream'
import { closeDb, createDb, type Db } from '@postgres-queue/db'
import { createLogger, type Logger } from '@postgres-queue/runtime'
import { createEffectsTable, createTestDatabase } from '@postgres-queue/testkit'
import type { Test } from 'tap'
import { DatabaseClock } from '../src/clock.js'
import type { WorkerConfig } from '../src/config.js'
import { ignoreProgress } from '../src/outcomes.js'

/** A migrated database of this test's own, plus the table the processors under test write to. */
export async function setUpDatabase(t: Test, maxConnections = 10): Promise<{ db: Db; url: string }> {
  const url = await createTestDatabase(t)
  const db = createDb(url, { maxConnections })
  t.teardown(() => closeDb(db))
  await createEffectsTable(db)
  return { db, url }
}

export function testConfig(overrides: Partial<WorkerConfig> = {}): WorkerConfig {
  return {
    databaseUrl: 'unused',
    workerName: 'test-worker',
    databaseSchema: 'postgres_queue',
    workerId: 'test-worker',
    mode: 'transaction',
    cron: '*/5 * * * * *',
    jitterMs: 0,
    batchSize: 50,
    maxBatchSize: 50,
    batchesInFlight: 1,
    leaseMs: 30_000,
    concurrency: 10,
    retry: { baseMs: 0, maxMs: 0 },
    orderTimeoutMs: 5000,
    batchTimeoutMs: 30_000,
    shutdownTimeoutMs: 5000,
    heartbeatMs: 5000,
    retentionDays: 7,
    idempotencyKeyDays: 30,
    retentionCron: '0 */5 * * * *',
    retentionBatchSize: 1000,
    metricsPort: undefined,
    log: { level: 'silent', format: 'json' },
    ...overrides,
  }
}

export const silentLogger: Logger = createLogger({ level: 'silent', format: 'json' })

/** A logger whose JSON lines are kept for assertions, parsed and as written; `base` as the worker sets it. */
export function capturingLogger(base?: Record<string, unknown>): {
  log: Logger
  lines: Record<string, unknown>[]
  raw: string[]
} {
  const lines: Record<string, unknown>[] = []
  const raw: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw.push(chunk.toString())
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
      done()
    },
  })
  return { log: createLogger({ level: 'debug', format: 'json', base }, stream), lines, raw }
}

/** The rest of a batch run's deps: never draining, never stopped, nobody listening, the clocks agreeing. */
export const running = {
  draining: new AbortController().signal,
  stop: new AbortController().signal,
  observer: ignoreProgress,
  clock: new DatabaseClock(),
}
