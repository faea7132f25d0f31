import type { SwaggerOptions } from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyPluginAsync, RouteOptions } from 'fastify'
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

/**
 * An onRoute hook. Every error leaves in one shape (errors.ts), so every documented route says so
 * once, here, rather than in each schema: the shared ErrorResponse is its 4xx and 5xx response.
 * Fastify serialises errors with it too.
 */
export function documentErrors(route: RouteOptions): void {
  const schema = route.schema
  if (schema === undefined || schema.hide === true) return
  const response = (schema.response ?? {}) as Record<string, unknown>
  route.schema = { ...schema, response: { '4xx': errorResponse, '5xx': errorResponse, ...response } }
}

/** Swagger UI at /docs, the document at /docs/json. Open like the dashboard's files: they hold no data. */
export const apiDocsUi: FastifyPluginAsync = async (app) => {
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, public: true }
  })
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { persistAuthorization: true } })
}
