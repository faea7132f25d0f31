import { Writable } from 'node:stream'
import { createLogger, type Logger } from '@postgres-queue/runtime'
import { loadConfig, type WorkerConfig } from '../src/config.js'
import { DatabaseClock } from '../src/loop/clock.js'
import type { DrainerDeps } from '../src/loop/drainer.js'
import type { Mode, ModeDeps } from '../src/modes/mode.js'
import { ignoreProgress } from '../src/observer.js'

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

/** The rest of a mode's deps: never stopping, nobody listening, the clocks agreeing. */
export const running = {
  stopClaiming: new AbortController().signal,
  abandonWork: new AbortController().signal,
  observer: ignoreProgress,
  clock: new DatabaseClock(),
}

/** One batch of a mode (transactionMode, leaseMode) as the drainer runs it: a claim of WORKER_BATCH_SIZE, none ahead. */
export function runBatch(mode: (deps: ModeDeps) => Mode, deps: ModeDeps) {
  return mode(deps).run({ limit: deps.config.batchSize, next: 0 })
}

/** A drainer's deps around `mode`: quiet, never stopping unless told, nothing to renew or promote. */
export function drainerDeps(
  mode: Mode,
  { config, ...overrides }: Partial<Omit<DrainerDeps, 'config'>> & { config: Partial<DrainerDeps['config']> },
): DrainerDeps {
  return {
    mode,
    config: { batchSize: 50, maxBatchSize: 50, batchesInFlight: 1, ...config },
    othersAlive: () => 0,
    log: silentLogger,
    stopClaiming: new AbortController().signal,
    abandonWork: new AbortController().signal,
    dueAt: () => {},
    recovered: () => {},
    ...overrides,
  }
}
