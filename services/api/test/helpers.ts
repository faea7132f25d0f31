import { type AddressInfo, createServer, type Socket } from 'node:net'
import { closeDb, createDb, type Db, insertOrders, sql } from '@postgres-queue/db'
import { createLogger, type Logger } from '@postgres-queue/runtime'
import { createTestDatabase, makeOrder, settleNow } from '@postgres-queue/testkit'
import { type App, buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { createApiDb } from '../src/database.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

export interface TestApi {
  app: App
  db: Db
}

export interface TestApiOptions {
  databaseUrl?: string
  logger?: Logger
  /** More variables for loadConfig, e.g. API_TOKEN. */
  env?: Record<string, string>
  /** Connections in the pool; 2 unless a test needs requests to race in the database. */
  maxConnections?: number
}

/**
 * The api on a migrated database of the test's own (or on `databaseUrl`), silent unless given a
 * logger, with the pool main.ts would build but smaller. The app, then the pool, are closed when `t` ends.
 */
export async function startApi(t: Teardown, options: TestApiOptions = {}): Promise<TestApi> {
  const databaseUrl = options.databaseUrl ?? (await createTestDatabase(t))
  const config = loadConfig({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent', ...options.env })
  const db = createApiDb(config, { maxConnections: options.maxConnections ?? 2 })
  // A 1 s cap: a pool still connecting to a database that never answers would otherwise hold the test.
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

/** Dead letters: orders that used their one attempt and failed. Returns their ids, ascending. */
export async function insertFailedOrders(db: Db, count = 1): Promise<number[]> {
  const inserted = await insertOrders(
    db,
    Array.from({ length: count }, () => makeOrder({ maxAttempts: 1 })),
  )
  const ids = inserted.map((order) => order.id)
  const outcomes = await settleNow(db, { failed: ids, error: 'processor threw: card declined' })
  if (outcomes.failed.some((outcome) => outcome.status !== 'failed')) throw new Error('an order was not dead-lettered')
  return inserted.map((order) => order.id)
}

/**
 * A database host that accepts connections and never answers, like one behind a partition: only a
 * connect timeout ends the wait. Register `close` as a teardown after startApi's: teardowns run last
 * first, and the host must stop accepting before the pool closes, or the pool reconnects into the
 * silence and closing it waits that out.
 */
export async function startSilentDatabaseHost(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const silent = createServer((socket) => sockets.add(socket))
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const { port } = silent.address() as AddressInfo
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/x`,
    async close() {
      const closed = new Promise((resolve) => silent.close(resolve))
      for (const socket of sockets) socket.destroy()
      await closed
    },
  }
}

/** Holds an exclusive lock on the orders table until the returned function is called. */
export async function lockOrders(t: Teardown, url: string): Promise<() => Promise<void>> {
  const locker = createDb(url, { maxConnections: 1 })
  t.teardown(() => closeDb(locker))
  let release: () => void = () => {}
  let locked: () => void = () => {}
  const isLocked = new Promise<void>((resolve) => (locked = resolve))
  const holding = locker.transaction(async (tx) => {
    await tx.execute(sql`lock table orders in access exclusive mode`)
    locked()
    await new Promise<void>((resolve) => (release = resolve))
  })
  await isLocked
  return async () => {
    release()
    await holding
  }
}
