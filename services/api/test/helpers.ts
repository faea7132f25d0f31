import { closeDb, createDb, type Db } from '@postgres-queue/db'
import { createTestDatabase } from '@postgres-queue/devkit'
import { createLogger, type Logger } from '@postgres-queue/runtime'
import { type App, buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

export interface TestApi {
  app: App
  db: Db
}

/**
 * The api on a migrated database of the test's own (or on `databaseUrl`), silent unless given a
 * logger. The app, then the pool, are closed when `t` ends.
 */
export async function startApi(t: Teardown, options: { databaseUrl?: string; logger?: Logger } = {}): Promise<TestApi> {
  const databaseUrl = options.databaseUrl ?? (await createTestDatabase(t))
  const config = loadConfig({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent' })
  const db = createDb(config.databaseUrl, { maxConnections: 2 })
  // A 1 s cap: a pool still connecting to a database that never answers would otherwise hold the test 5 s.
  t.teardown(() => closeDb(db, 1))
  const app = buildApp({ db, config, logger: options.logger })
  t.teardown(() => app.close())
  return { app, db }
}

/** A URL where nothing listens: every connection is refused at once. */
export const UNREACHABLE_DATABASE_URL = 'postgres://postgres:postgres@127.0.0.1:1/postgres_queue'

/** A logger that keeps its lines, parsed, for assertions. */
export function captureLogs(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = []
  const logger = createLogger({ level: 'debug', format: 'json' }, { write: (line) => lines.push(JSON.parse(line)) })
  return { logger, lines }
}
