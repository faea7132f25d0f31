import type { SwaggerOptions } from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyPluginAsync, FastifySchema, RouteOptions } from 'fastify'
import { ErrorResponse } from './schemas/errors.js'

const BEARER = 'bearerAuth'

/**
 * The OpenAPI document, generated from the routes' TypeBox schemas. 3.1 because its schemas are
 * JSON Schema: TypeBox's `anyOf [T, null]` for a nullable field is valid there, not in 3.0.
 * With a token configured, every operation requires it but those that say `security: []`.
 */
export function openApiOptions({ secured }: { secured: boolean }): SwaggerOptions {
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'postgres-queue',
        version: '0.1.0',
        description: 'Submit orders to a queue kept in PostgreSQL, follow them, redrive the failed ones.',
      },
      tags: [
        { name: 'orders', description: 'Submit, read, redrive and cancel orders' },
        { name: 'queue', description: 'The queue and the worker fleet at a glance' },
        { name: 'metrics', description: 'For Prometheus' },
        { name: 'health', description: 'Probes for an orchestrator; never behind the token' },
      ],
      components: {
        securitySchemes: {
          [BEARER]: { type: 'http', scheme: 'bearer', description: 'The API_TOKEN the server was started with' },
        },
      },
      ...(secured ? { security: [{ [BEARER]: [] }] } : {}),
    },
    // Shared schemas keep their $id as their name in components, rather than def-0, def-1...
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  }
}

const ERROR_RESPONSE_ID = 'ErrorResponse'
const errorResponse = { $ref: `${ERROR_RESPONSE_ID}#` }

/** ErrorResponse as a shared schema: one entry in the document's components, referenced by every route. */
export const sharedErrorResponse = {
  ...ErrorResponse,
  $id: ERROR_RESPONSE_ID,
  title: ERROR_RESPONSE_ID,
  description: 'An error: the one shape every error has',
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The error statuses this route answers besides those every route of its kind may (docs.ts). */
    errors?: readonly ErrorStatus[]
  }
}

/** Every error status the api answers, with what it means: the document's response descriptions. */
const ERROR_STATUSES = {
  400: 'Invalid input (VALIDATION_FAILED, INVALID_JSON, EMPTY_BODY): nothing was stored or changed',
  401: 'API_TOKEN is set and the request does not carry it as a bearer token (UNAUTHORIZED)',
  403: 'A state-changing request a browser sent from another site (CROSS_SITE_REQUEST)',
  404: 'No such order (ORDER_NOT_FOUND)',
  409: 'The order is not in a state that allows this (ORDER_NOT_FAILED, ORDER_NOT_CANCELLABLE)',
  410: 'The Idempotency-Key stored an order that retention has since deleted (ORDER_DELETED); nothing was stored',
  413: 'The body is larger than this route accepts (BODY_TOO_LARGE)',
  415: 'The body is not JSON (UNSUPPORTED_MEDIA_TYPE)',
  422: 'The Idempotency-Key was used before with another body (IDEMPOTENCY_KEY_REUSED)',
  500: 'An unexpected error (INTERNAL_ERROR); logged with its stack',
  503:
    'The database is unreachable, busy or slow, or the intake queue is full (DATABASE_UNAVAILABLE, DATABASE_BUSY, ' +
    'DATABASE_TIMEOUT, INTAKE_SATURATED): nothing was changed; retry after Retry-After',
} as const
type ErrorStatus = keyof typeof ERROR_STATUSES

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/**
 * An onRoute hook. Every error leaves in one shape (errors.ts), so each documented route lists every
 * status it can answer with the shared ErrorResponse, here rather than in each schema: those every
 * route of its kind may (a token, input, a cross-site guard, the database) and its own
 * (`config.errors`). A generated client then knows each error by status. Every operation must have
 * an operationId, a client's method name: a route without one fails at start-up.
 */
export function documentErrors(route: RouteOptions): void {
  const schema = route.schema as (FastifySchema & { operationId?: string; hide?: boolean }) | undefined
  if (schema === undefined || schema.hide === true) return
  if (!schema.operationId) throw new Error(`${String(route.method)} ${route.url} is documented without an operationId`)
  const statuses = new Set<ErrorStatus>([500])
  if (!route.config?.public) statuses.add(401).add(503)
  if (schema.body || schema.querystring || schema.params || schema.headers) statuses.add(400)
  if (schema.body) statuses.add(413).add(415)
  if ([route.method].flat().some((method) => STATE_CHANGING.has(method))) statuses.add(403)
  for (const status of route.config?.errors ?? []) statuses.add(status)
  const errors = Object.fromEntries(
    [...statuses].sort().map((status) => [status, { description: ERROR_STATUSES[status], ...errorResponse }]),
  )
  route.schema = { ...schema, response: { ...errors, ...(schema.response as Record<string, unknown>) } }
}

/** Swagger UI at /docs, the document at /docs/json. Open like the dashboard's files: they hold no data. */
export const apiDocsUi: FastifyPluginAsync = async (app) => {
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, public: true }
  })
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { persistAuthorization: true } })
}
