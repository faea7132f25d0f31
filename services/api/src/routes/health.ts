import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { type Db, pingDatabase } from '@postgres-queue/db'
import { Health, Readiness } from '../schemas/health.js'

/**
 * Under a typical probe timeout, so a database that does not answer makes the api unready instead of
 * a probe that hangs, whatever holds the ping up: a connect timing out, the pool's reconnect backoff,
 * or a server that took the connection and says nothing.
 */
const PING_TIMEOUT_MS = 2000

export const healthRoutes: FastifyPluginAsyncTypebox<{ db: Db }> = async (app, { db }) => {
  // Liveness: the process answers. The database is /ready's concern; restarting the api would not fix it.
  app.get('/health', { schema: { response: { 200: Health } } }, async () => ({ status: 'ok' as const }))

  app.get('/ready', { schema: { response: { 200: Readiness, 503: Readiness } } }, async (request, reply) => {
    try {
      await withTimeout(pingDatabase(db), PING_TIMEOUT_MS)
      return { status: 'ok' as const }
    } catch (err) {
      request.log.warn({ err }, 'database ping failed')
      return reply.code(503).send({ status: 'unavailable' })
    }
  })
}

/** Rejects after `ms`; `promise` keeps running, its outcome ignored (race has subscribed to it). */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
