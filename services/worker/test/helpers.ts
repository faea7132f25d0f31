import { Writable } from 'node:stream'
import { closeDb, createDb, type Db } from '@postgres-queue/db'
import { createLogger, type Logger } from '@postgres-queue/runtime'
import { createEffectsTable, createTestDatabase } from '@postgres-queue/testkit'
import type { Test } from 'tap'
import { DatabaseClock } from '../src/clock.js'
import { loadConfig, type WorkerConfig } from '../src/config.js'
import { ignoreProgress } from '../src/outcomes.js'

/** A migrated database of this test's own, plus the table the processors under test write to. */
export async function setUpDatabase(t: Test, maxConnections = 10): Promise<{ db: Db; url: string }> {
  const url = await createTestDatabase(t)
  const db = createDb(url, { maxConnections })
  t.teardown(() => closeDb(db))
  await createEffectsTable(db)
  return { db, url }
}

/**
 * The configuration loadConfig reads from a test's environment: the production defaults but where a
 * test wants it quicker, quieter or smaller (no jitter, one batch in flight, retries at once).
 */
export function testConfig(overrides: Partial<WorkerConfig> = {}): WorkerConfig {
  const config = loadConfig({
    DATABASE_URL: 'postgres://unused',
    WORKER_NAME: 'test-worker',
    WORKER_ID: 'test-worker',
    WORKER_JITTER_MS: '0',
    WORKER_MAX_BATCH_SIZE: '50',
    WORKER_BATCHES_IN_FLIGHT: '1',
    WORKER_RETRY_BASE_MS: '0',
    WORKER_RETRY_MAX_MS: '0',
    WORKER_ORDER_TIMEOUT_MS: '5000',
    WORKER_SHUTDOWN_TIMEOUT_MS: '5000',
    LOG_LEVEL: 'silent',
  })
  return { ...config, ...overrides }
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
