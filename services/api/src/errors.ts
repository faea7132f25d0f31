import { STATUS_CODES } from 'node:http'
import { isDatabaseUnavailable, isTransientDatabaseError } from '@postgres-queue/db'
import type { FastifyError, FastifyReply, FastifyRequest, FastifySchemaValidationError } from 'fastify'
import type { ErrorResponse } from './schemas/errors.js'

/** An error raised on purpose by a route; its code and message are meant for the client. */
export class ApiError extends Error {
  override readonly name = 'ApiError'
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** For a rule the schema cannot express: the details, in the shape schema validation gives them. */
    readonly validation?: FastifySchemaValidationError[],
  ) {
    super(message)
  }
}

/**
 * A 400 VALIDATION_FAILED for one body field, shaped like the validator's own: `path` is a JSON
 * pointer into the body, `message` says what is wrong with it.
 */
export function invalidBody(path: string, message: string): ApiError {
  return new ApiError(400, 'VALIDATION_FAILED', `body${path} ${message}`, [
    { keyword: 'custom', instancePath: path, schemaPath: '', params: {}, message },
  ])
}

/** Our codes for Fastify's client errors, spelled out so they stay stable whatever Fastify or Node renames. */
const FASTIFY_CODES: Readonly<Record<string, string>> = {
  FST_ERR_VALIDATION: 'VALIDATION_FAILED',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'EMPTY_BODY',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
}

/** A database restart or failover takes seconds: clients that come back no sooner don't pile on meanwhile. */
const RETRY_AFTER_SECONDS = 5

/**
 * The one error handler: every error leaves as an ErrorResponse. Client errors (4xx) keep their
 * message; anything else is logged with its stack and answered generically, so nothing internal
 * (SQL, hosts, stack traces) reaches the client.
 */
export function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (isDatabaseUnavailable(error)) {
    request.log.warn({ err: error }, 'database unavailable')
    return reply
      .code(503)
      .header('retry-after', RETRY_AFTER_SECONDS)
      .send(errorResponse(503, 'DATABASE_UNAVAILABLE', 'The database is unavailable; retry later'))
  }
  if (isTransientDatabaseError(error)) {
    // A statement timeout (a lock, a stalled disk), a deadlock: the statement did not take effect.
    request.log.warn({ err: error }, 'database timed out')
    return reply
      .code(503)
      .header('retry-after', RETRY_AFTER_SECONDS)
      .send(
        errorResponse(503, 'DATABASE_TIMEOUT', 'The database did not answer in time; nothing was changed, retry later'),
      )
  }
  if (error instanceof ApiError && error.statusCode >= 500) {
    // Refused on purpose (a full queue, too many requests waiting): what to do is the client's to know.
    request.log.warn({ code: error.code }, 'request refused')
    if (error.statusCode === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', 1)
    return reply.code(error.statusCode).send(errorResponse(error.statusCode, error.code, error.message))
  }
  const status = error.statusCode ?? 500
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    // Fastify asks to close the connection here, and Node then closes it while the client is still
    // sending: the client's next write meets a reset, and a client that writes its whole body before
    // reading (Node's fetch) gets EPIPE instead of this 413. Kept open, Node reads the rest of the body
    // and discards it (bounded by API_REQUEST_TIMEOUT_MS), so the answer is read.
    reply.removeHeader('connection')
  }
  if (status >= 400 && status < 500) {
    const code = error instanceof ApiError ? error.code : (FASTIFY_CODES[error.code] ?? codeOf(status))
    return reply.code(status).send(errorResponse(status, code, error.message, error.validation))
  }
  request.log.error({ err: error }, 'request failed')
  const serverStatus = status >= 500 && status < 600 ? status : 500
  return reply
    .code(serverStatus)
    .send(errorResponse(serverStatus, codeOf(serverStatus), 'An unexpected error occurred'))
}

export function handleNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.code(404).send(errorResponse(404, 'NOT_FOUND', `Route ${request.method} ${request.url} not found`))
}

function errorResponse(
  statusCode: number,
  code: string,
  message: string,
  validation?: FastifyError['validation'],
): ErrorResponse {
  const response: ErrorResponse = { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', code, message }
  if (validation) {
    response.details = validation.map((e) => ({ path: e.instancePath, message: e.message ?? 'is invalid' }))
  }
  return response
}

/** 502 -> BAD_GATEWAY: the reason phrase, for errors with nothing more specific to say. */
function codeOf(status: number): string {
  return (STATUS_CODES[status] ?? 'Error').toUpperCase().replaceAll(/[^A-Z0-9]+/g, '_')
}
