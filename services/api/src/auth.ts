import { createHash, timingSafeEqual } from 'node:crypto'
import { type AddressInfo, isIP } from 'node:net'
import type { Logger } from '@postgres-queue/runtime'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ApiError } from './errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Served without the token. Probes carry no credentials: an orchestrator must reach them whatever
     * the token. The dashboard's files and the API docs hold no data, and a browser cannot attach a
     * bearer header to a navigation: the page asks for the token for its data calls instead.
     */
    public?: boolean
  }
}

const BEARER = /^Bearer +(\S+) *$/i

/**
 * An onRequest hook requiring `Authorization: Bearer <token>` on every route not marked public, unknown
 * routes included, so a client without the token cannot map the api by its 404s. It runs before the
 * body is read: an unauthenticated client cannot make the api parse megabytes.
 */
export function requireBearerToken(token: string): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  // Digests of equal length whatever the token's length: timingSafeEqual then compares in constant
  // time, and neither a mismatch nor a length difference is faster to detect.
  const expected = digest(token)
  return async (request, reply) => {
    if (request.routeOptions.config.public === true) return
    const presented = BEARER.exec(request.headers.authorization ?? '')?.[1]
    if (presented === undefined) {
      reply.header('www-authenticate', 'Bearer')
      throw new ApiError(401, 'UNAUTHORIZED', 'This endpoint requires Authorization: Bearer <token>')
    }
    if (!timingSafeEqual(digest(presented), expected)) {
      reply.header('www-authenticate', 'Bearer error="invalid_token"')
      throw new ApiError(401, 'UNAUTHORIZED', 'The bearer token is not valid')
    }
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/**
 * For an api without a token, once it listens: warns when it listens on an address other machines
 * can reach, since anyone there can then list customers and redrive or cancel orders. Loopback
 * only (a local try, or behind a proxy on the same host) says nothing.
 */
export function warnIfOpenToTheNetwork(addresses: readonly (string | AddressInfo)[], log: Logger): void {
  const reachable = addresses.flatMap((a) =>
    typeof a === 'string' || isLoopback(a.address) ? [] : [`${a.address}:${a.port}`],
  )
  if (reachable.length === 0) return
  log.warn(
    { addresses: reachable },
    'API_TOKEN is not set and the api listens beyond this machine: anyone who reaches it can read, cancel and redrive orders',
  )
}

function isLoopback(address: string): boolean {
  if (isIP(address) === 4) return address.startsWith('127.')
  return address === '::1' || address.startsWith('::ffff:127.')
}
