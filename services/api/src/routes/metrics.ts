import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { ApiMetrics } from '../metrics.js'

/** Keyed by content type, so only this response is documented as text; errors stay JSON. */
const PrometheusText = {
  description: 'Every metric, in the Prometheus text exposition format 0.0.4',
  content: { 'text/plain': { schema: Type.String() } },
}

/** GET /metrics for Prometheus. Behind the token like every data route: scrape configs can send it. */
export const metricsRoutes: FastifyPluginAsyncTypebox<{ metrics: ApiMetrics }> = async (app, { metrics }) => {
  const summary = 'Prometheus metrics: submissions, queue depth and lag, request durations, process'
  const schema = { operationId: 'getMetrics', tags: ['metrics'], summary, response: { 200: PrometheusText } }
  app.get('/metrics', { schema }, async (_request, reply) => {
    const body = await metrics.scrape()
    return reply.type(metrics.contentType).send(body)
  })
}
