import { assertMigrated, closeDb, STALLED_CONNECTION, stallLimitMs, watchForStalls } from '@postgres-queue/db'
import { ConfigError, startTracing, stopThenExit } from '@postgres-queue/runtime'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { type ApiConfig, loadConfig } from './config.js'
import { createApiDb } from './database.js'

/** Ample for in-flight requests (a 1000-order batch takes well under a second), short of a typical 30 s kill. */
const SHUTDOWN_GRACE_MS = 10_000

let config: ApiConfig
try {
  config = loadConfig(process.env)
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  console.error(err.message)
  process.exit(2)
}

// Before the app: its spans go to the provider registered here (OTEL_* variables; off by default).
const stopTracing = await startTracing('postgres-queue-api', process.env)
const db = createApiDb(config)
const app = buildApp({ db, config })
try {
  // Refused at once with a line saying why, rather than answering every request with a 500.
  await assertMigrated(db)
} catch (err) {
  app.log.fatal({ err }, 'api failed to start')
  await closeDb(db)
  process.exit(1)
}

const shutdown = async () => {
  stalls.stop()
  await app.close()
  await closeDb(db)
  await stopTracing()
}

// First signal: stop accepting, let in-flight requests finish, then close the pool. A second signal,
// or the grace period running out, exits at once.
const grace = closeWithGrace(
  {
    delay: SHUTDOWN_GRACE_MS,
    onSecondSignal: (signal) => app.log.warn({ signal }, 'second signal, exiting now'),
    onSecondError: (err) => app.log.error({ err }, 'error while shutting down, exiting now'),
    onTimeout: (ms) => app.log.error({ ms }, 'shutdown timed out, exiting now'),
    // Only reached when the shutdown itself fails.
    logger: { error: (err: unknown) => app.log.error({ err }, 'shutdown failed') },
  },
  async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an uncaught error')
    else app.log.info({ signal }, 'shutting down')
    await shutdown()
  },
)

// A pool connection gone silent without closing (a failover that moved the server's address) holds
// every request that reaches it: exit 1, so that the orchestrator starts an api with fresh
// connections. The requests on it never end, so the exit does not wait past the grace period.
const stalls = watchForStalls({
  db,
  limitMs: stallLimitMs(config.databaseStatementTimeoutMs),
  onStalled(stall) {
    app.log.error(stall, STALLED_CONNECTION)
    grace.uninstall()
    stopThenExit(shutdown, SHUTDOWN_GRACE_MS)
  },
})

try {
  await app.listen({ port: config.port, host: config.host })
} catch (err) {
  app.log.fatal({ err }, 'api failed to start')
  await closeDb(db)
  process.exit(1)
}
