import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyPluginAsync } from 'fastify'

/**
 * Plain files beside src/ and dist/ (tsc copies no assets), shipped by package.json's `files`.
 * Resolved from this module, so the same path holds in the repo and in `pnpm deploy`'s output.
 */
export const DASHBOARD_DIR = fileURLToPath(new URL('../dashboard/', import.meta.url))

/**
 * Nothing on the page comes from elsewhere (no CDN): the browser is told so, and a script injected
 * through, say, an order's error text could neither run nor send data anywhere.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

/**
 * The dashboard: `/` and its files under `/dashboard/`. Served without the token (see auth.ts):
 * the files hold no data, and the page sends the token with its data calls.
 */
export const dashboardRoutes: FastifyPluginAsync = async (app) => {
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, public: true }
  })
  app.addHook('onSend', async (_request, reply) => {
    reply.header('content-security-policy', CONTENT_SECURITY_POLICY).header('x-content-type-options', 'nosniff')
  })
  // wildcard: false registers one route per file found now, rather than `/dashboard/*`: any other
  // path stays unknown, so without the token it is a 401 like every unknown route.
  await app.register(fastifyStatic, { root: DASHBOARD_DIR, prefix: '/dashboard/', wildcard: false, index: false })
  app.get('/', { schema: { hide: true } }, (_request, reply) => reply.sendFile('index.html'))
}
