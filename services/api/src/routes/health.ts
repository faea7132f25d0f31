import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { type Db, pingOrders } from '@postgres-queue/db'
import type { DatabaseGate } from '../guards.js'
import type { OrderIntake } from '../order-intake.js'
import { Health, Readiness } from '../schemas/health.js'
import { withTimeout } from '../timeout.js'

/**
 * Under a typical probe timeout, so a database that does not answer makes the api unready instead of
 * a probe that hangs, whatever holds the ping up: a connect timing out, the pool's reconnect backoff,
 * or a server that took the connection and says nothing.
 */
const PING_TIMEOUT_MS = 2000

/**
 * Probes are open whatever API_TOKEN says (auth.ts), and their documented operations say so.
 * Their logger's level is warn: Fastify logs two lines per request at info, which would have every
 * orchestrator probe (Docker's every 5 s, Kubernetes' two kinds per pod) drown the log. A route
 * level of debug would not do it: it lowers the threshold, and those lines are info. A failed
 * readiness check still logs its warning.
 */
const probe = (operationId: string, summary: string) => ({
  config: { public: true },
  logLevel: 'warn' as const,
  schema: { operationId, tags: ['health'], summary, security: [] },
})

type Deps = { db: Db; intake: OrderIntake; gate: DatabaseGate }

export const healthRoutes: FastifyPluginAsyncTypebox<Deps> = async (app, { db, intake, gate }) => {
  // Liveness: the process answers. The database is /ready's concern; restarting the api would not fix it.
  const liveness = probe('getHealth', 'Liveness: the process answers')
  app.get('/health', { ...liveness, schema: { ...liveness.schema, response: { 200: Health } } }, async () => ({
    status: 'ok' as const,
  }))

  // Ready: the orders table answers within 2 s (a lock on it, not only a stopped server, makes the
  // api unready), and neither the intake's queue nor the line for the database is full.
  const readiness = probe(
    'getReadiness',
    'Readiness: the orders table answers within 2 s and neither the intake nor the line for the database is full',
  )
  const readinessSchema = { ...readiness.schema, response: { 200: Readiness, 503: Readiness } }
  app.get('/ready', { ...readiness, schema: readinessSchema }, async (request, reply) => {
    if (intake.saturated() || gate.saturated()) {
      request.log.warn(
        intake.saturated() ? 'not ready: the intake queue is full' : 'not ready: the line for the database is full',
      )
      return reply.code(503).send({ status: 'unavailable' })
    }
    try {
      await withTimeout(pingOrders(db), PING_TIMEOUT_MS)
      return { status: 'ok' as const }
    } catch (err) {
      request.log.warn({ err }, 'database ping failed')
      return reply.code(503).send({ status: 'unavailable' })
    }
  })
}
