import { createServer } from 'node:http'
import swagger from '@fastify/swagger'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Db } from '@postgres-queue/db'
import { createLogger, type Logger } from '@postgres-queue/runtime'
import Fastify from 'fastify'
import { requireBearerToken, warnIfOpenToTheNetwork } from './auth.js'
import type { ApiConfig } from './config.js'
import { dashboardRoutes } from './dashboard.js'
import { apiDocsUi, documentErrors, openApiOptions, sharedErrorResponse } from './docs.js'
import { handleError, handleNotFound } from './errors.js'
import { databaseGate, refuseCrossSiteRequests } from './guards.js'
import { createApiMetrics } from './metrics.js'
import { createOrderIntake } from './order-intake.js'
import { healthRoutes } from './routes/health.js'
import { metricsRoutes } from './routes/metrics.js'
import { orderActionRoutes } from './routes/order-actions.js'
import { orderRoutes } from './routes/orders.js'
import { queueRoutes } from './routes/queue.js'
import { validatorCompiler } from './validation.js'

// Group commit: up to 100 single submissions per insert. API_INSERTS_IN_FLIGHT inserts at once
// (default 1): on 2 cores, 1 in flight took 30% more orders/s than 4, at a lower p99, because
// fewer, larger inserts cost less CPU per order in the api and the server (docs/performance.md).
const MAX_ORDERS_PER_INSERT = 100
/**
 * Requests that may wait in line for the database at once: a bound on memory (a few KiB each), far
 * above what a healthy pool drains within the wait, as the intake's queue is by default.
 */
const MAX_WAITING_FOR_DATABASE = 5000

export interface AppDeps {
  /** Borrowed: whoever created it closes it, after the app. */
  db: Db
  config: ApiConfig
  /** Defaults to one built from the config's log level and format. */
  logger?: Logger
}

/** The HTTP api, ready for `inject` or `listen`. */
export function buildApp({ db, config, logger }: AppDeps) {
  const app = Fastify({
    loggerInstance:
      logger ?? createLogger({ level: config.logLevel, format: config.logFormat, base: { service: 'api' } }),
    // Fastify's own 503 for a request arriving on a kept-alive connection during close has another
    // shape than every other error. Serving it instead is cheap: the pool closes only after the app,
    // and the response's `Connection: close` ends that connection.
    return503OnClosing: false,
    serverFactory: (handler) =>
      createServer(
        {
          // A client trickling its request a byte every few seconds is cut off once the whole request
          // took this long (408); Node checks every second, not every 30 s.
          requestTimeout: config.requestTimeoutMs,
          connectionsCheckingInterval: 1000,
          // Fastify's default for its own servers, kept: longer than a load balancer's idle timeout.
          keepAliveTimeout: 72_000,
        },
        handler,
      ),
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.setValidatorCompiler(validatorCompiler)
  app.setErrorHandler(handleError)
  app.setNotFoundHandler(handleNotFound)
  // Every body is JSON; without this, a text/plain body would reach validation and get a 400, not a 415.
  app.removeContentTypeParser('text/plain')

  // Fastify answers requests that arrive during close with `Connection: close`, but not those already
  // running: their keep-alive connections would stay open and hold close() (hence the shutdown) until
  // the client's idle timeout. Telling those clients too lets close() finish with the last response.
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close')
  })

  if (config.apiToken !== undefined) app.addHook('onRequest', requireBearerToken(config.apiToken))
  else app.addHook('onListen', async () => warnIfOpenToTheNetwork(app.addresses(), app.log))
  app.addHook('onRequest', refuseCrossSiteRequests(config.allowedOrigins))
  // A request waits for the database as long as a submission may wait in the intake's queue.
  const gate = databaseGate({
    concurrency: config.databasePoolSize,
    maxWaitMs: config.databaseStatementTimeoutMs,
    maxWaiting: MAX_WAITING_FOR_DATABASE,
  })
  app.addHook('preHandler', gate.preHandler)
  app.addHook('onRequestAbort', gate.onRequestAbort)
  app.addHook('onSend', gate.onSend)
  app.addHook('onResponse', gate.onResponse)

  const metrics = createApiMetrics({ db, log: app.log })
  app.addHook('onResponse', metrics.timeRequest)

  const intake = createOrderIntake(db, {
    maxBatch: MAX_ORDERS_PER_INSERT,
    maxInFlight: config.insertsInFlight,
    maxQueued: config.intakeQueueLimit,
    maxWaitMs: config.databaseStatementTimeoutMs,
    log: app.log,
  })
  // Submissions still queued when the server stops accepting are inserted before the pool closes.
  app.addHook('onClose', () => intake.flush())

  // Before every route, so the document sees them all: both work through onRoute hooks.
  app.addSchema(sharedErrorResponse)
  app.addHook('onRoute', documentErrors)
  app.register(swagger, openApiOptions({ secured: config.apiToken !== undefined }))
  app.register(apiDocsUi)

  app.register(healthRoutes, { db, intake, gate })
  app.register(orderRoutes, { db, intake, metrics })
  app.register(orderActionRoutes, { db, intake })
  app.register(queueRoutes, { db })
  app.register(metricsRoutes, { metrics })
  app.register(dashboardRoutes)
  return app
}

export type App = ReturnType<typeof buildApp>
