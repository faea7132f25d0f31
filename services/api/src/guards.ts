import type { FastifyReply, FastifyRequest } from 'fastify'
import { ApiError } from './errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Bounded elsewhere (POST /orders: the intake's queue), so the database gate lets it through. */
    ownQueue?: boolean
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * An onRequest hook refusing state-changing requests that a browser sends from another site. With
 * no API_TOKEN set, any page open in an operator's browser could otherwise cancel or redrive orders
 * with a form or a `fetch` in no-cors mode ("simple requests": no preflight). Browsers say where a
 * request comes from: Sec-Fetch-Site (all current ones) and Origin (on every cross-origin POST).
 * Clients that are not browsers send neither, and pass.
 */
export async function refuseCrossSiteRequests(request: FastifyRequest): Promise<void> {
  if (SAFE_METHODS.has(request.method)) return
  const site = request.headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin' && site !== 'none') throw crossSite(`Sec-Fetch-Site: ${site}`)
  const origin = request.headers.origin
  if (origin !== undefined && !sameHost(origin, request.headers.host)) throw crossSite(`Origin: ${origin}`)
}

/** Whether `origin` names the host the request was sent to (`Host`), default ports included. */
function sameHost(origin: string, host: string | undefined): boolean {
  try {
    const from = new URL(origin)
    const to = new URL(`${from.protocol}//${host}`)
    return from.host === to.host
  } catch {
    return false // "null" (a sandboxed frame, a file), garbage, or no Host: never this host
  }
}

function crossSite(evidence: string): ApiError {
  return new ApiError(403, 'CROSS_SITE_REQUEST', `State-changing requests from another site are refused (${evidence})`)
}

/**
 * Bounds how many requests wait on the database at once. Every statement is bounded by
 * statement_timeout, but a pool's queue is not: with the database stalled, requests beyond the pool
 * would queue for a multiple of that timeout. Past `limit`, a request is refused with a 503 at
 * once. Routes marked public (probes, dashboard files, docs) and those with a queue of their own
 * pass.
 */
export function databaseGate(limit: number) {
  let waiting = 0
  const counted = new WeakSet<FastifyRequest>()
  return {
    onRequest: async (request: FastifyRequest, reply: FastifyReply) => {
      const { config } = request.routeOptions
      if (config.public === true || config.ownQueue === true || request.is404) return
      if (waiting >= limit) {
        reply.header('retry-after', 1)
        throw new ApiError(503, 'DATABASE_BUSY', 'Too many requests are waiting for the database; retry later')
      }
      waiting += 1
      counted.add(request)
    },
    onResponse: async (request: FastifyRequest) => {
      if (counted.delete(request)) waiting -= 1
    },
  }
}
