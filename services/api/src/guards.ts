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
 *
 * Sec-Fetch-Site decides when it is there: the browser itself compared the page's origin with the
 * request's, so `same-origin` holds behind a proxy that rewrites Host (nginx's default), where
 * comparing Origin with Host would refuse the dashboard's own buttons. A browser that sends only
 * Origin is compared with Host, or with `allowedOrigins` (API_ALLOWED_ORIGINS), which also admits
 * pages of other origins an operator names.
 */
export function refuseCrossSiteRequests(allowedOrigins: readonly string[]) {
  const allowed = new Set(allowedOrigins)
  return async (request: FastifyRequest): Promise<void> => {
    if (SAFE_METHODS.has(request.method)) return
    const origin = request.headers.origin
    if (origin !== undefined && allowed.has(origin.toLowerCase())) return
    const site = request.headers['sec-fetch-site']
    if (site !== undefined) {
      if (site !== 'same-origin' && site !== 'none') throw crossSite(`Sec-Fetch-Site: ${site}`)
      return
    }
    if (origin !== undefined && !sameHost(origin, request.headers.host)) throw crossSite(`Origin: ${origin}`)
  }
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

export interface DatabaseGateOptions {
  /** Requests doing their database work at once: the pool's connections. */
  concurrency: number
  /** The longest a request waits for its turn; past it, 503 DATABASE_BUSY. */
  maxWaitMs: number
  /** Requests waiting at once; one more is refused at once. */
  maxWaiting: number
}

export interface DatabaseGate {
  /** Whether the line is full: /ready says so, so a load balancer sends requests elsewhere. */
  saturated(): boolean
}

interface Waiter {
  admit(): void
  refuse(err: ApiError): void
  timer: NodeJS.Timeout
}

/**
 * Admission to the database for the routes without a queue of their own. At most `concurrency`
 * requests run their handlers at once, one per pooled connection: more would only queue inside the
 * driver, where no wait can be bounded. The others wait in line, first come first served; one that
 * waits past `maxWaitMs`, or finds `maxWaiting` ahead of it, is refused with 503 DATABASE_BUSY. So
 * shedding follows how long requests wait for the database, not how many there are: a healthy
 * database serves any number the pool drains in time, and a stalled one turns them into prompt 503s.
 *
 * A place is given back when its handler has the answer (onSend), whether or not the client is
 * still there to read it: a client that hangs up early does not end the database work its request
 * started, and Fastify runs no onResponse for a response that could not be delivered. A client that
 * leaves while waiting in line gives up its place (onRequestAbort). The gate sits in preHandler,
 * after the body is read and validated: a slow or invalid upload holds no place.
 */
export function databaseGate({ concurrency, maxWaitMs, maxWaiting }: DatabaseGateOptions) {
  let running = 0
  // A Map keeps insertion order: the line.
  const line = new Map<FastifyRequest, Waiter>()
  const admitted = new WeakSet<FastifyRequest>()

  function admitNext(): void {
    for (const [request, waiter] of line) {
      if (running >= concurrency) return
      line.delete(request)
      clearTimeout(waiter.timer)
      running += 1
      admitted.add(request)
      waiter.admit()
    }
  }

  async function release(request: FastifyRequest): Promise<void> {
    if (!admitted.delete(request)) return
    running -= 1
    admitNext()
  }

  const gate: DatabaseGate = { saturated: () => line.size >= maxWaiting }
  return Object.assign(gate, {
    preHandler: async (request: FastifyRequest): Promise<void> => {
      const { config } = request.routeOptions
      if (config.public === true || config.ownQueue === true || request.is404) return
      if (running < concurrency && line.size === 0) {
        running += 1
        admitted.add(request)
        return
      }
      if (line.size >= maxWaiting) throw busy(`${maxWaiting} requests are already waiting for the database`)
      await new Promise<void>((admit, refuse) => {
        const timer = setTimeout(() => {
          line.delete(request)
          refuse(busy(`waited ${maxWaitMs} ms for the database`))
        }, maxWaitMs)
        line.set(request, { admit, refuse, timer })
      })
    },
    onRequestAbort: async (request: FastifyRequest): Promise<void> => {
      const waiter = line.get(request)
      if (waiter === undefined) return
      line.delete(request)
      clearTimeout(waiter.timer)
      waiter.refuse(new ApiError(499, 'CLIENT_CLOSED_REQUEST', 'The client closed the request while it waited'))
    },
    onSend: async (request: FastifyRequest, _reply: FastifyReply, payload: unknown): Promise<unknown> => {
      await release(request)
      return payload
    },
    // Idempotent: also on onResponse, for any answer that reached the client without passing onSend.
    onResponse: release,
  })
}

function busy(why: string): ApiError {
  return new ApiError(503, 'DATABASE_BUSY', `Too many requests are waiting for the database (${why}); retry later`)
}
