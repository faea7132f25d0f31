import { Validator } from '@seriousme/openapi-schema-validator'
import type { InjectOptions, RouteOptions } from 'fastify'
import t, { type Test } from 'tap'
import { startApi } from './helpers.js'

interface Operation {
  operationId?: string
  tags?: string[]
  summary?: string
  security?: Record<string, string[]>[]
  parameters?: { in: string; name: string }[]
  requestBody?: unknown
  responses: Record<string, unknown>
}
interface OpenApiDocument {
  openapi: string
  info: { title: string; version: string }
  paths: Record<string, Record<string, Operation>>
  components: { schemas?: Record<string, unknown>; securitySchemes?: Record<string, unknown> }
  security?: Record<string, string[]>[]
}

/** The app's routes as Fastify registers them, collected before the app loads its plugins. */
async function appWithRoutes(t: Test, env?: Record<string, string>) {
  const { app } = await startApi(t, { env })
  const routes: RouteOptions[] = []
  app.addHook('onRoute', (route) => void routes.push(route))
  await app.ready()
  const response = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(response.statusCode, 200, 'GET /docs/json')
  return { app, routes, document: response.json() as OpenApiDocument }
}

/** /orders/:id -> /orders/{id} */
const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}')

/** Routes left out of the document on purpose: the dashboard's files and the docs' own pages. */
const undocumented = (url: string) => url === '/' || url.startsWith('/dashboard/') || url.startsWith('/docs')

t.test('every route is in the OpenAPI document, with its tags, summary and schemas', async (t) => {
  const { routes, document } = await appWithRoutes(t)
  const methods = routes.flatMap((route) =>
    [route.method]
      .flat()
      .filter((method) => method !== 'HEAD')
      .map((method) => ({ route, method })),
  )
  t.ok(methods.length >= 12, `${methods.length} routes registered`)
  const ids = Object.values(document.paths).flatMap((ops) => Object.values(ops).map((op) => op.operationId))
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique')
  for (const { route, method } of methods) {
    const label = `${method} ${route.url}`
    if (route.schema?.hide === true) {
      t.ok(undocumented(route.url), `${label} is hidden, and only dashboard and docs routes are`)
      continue
    }
    const operation = document.paths[openApiPath(route.url)]?.[method.toLowerCase()]
    if (!operation) {
      t.fail(`${label} is missing from the document`)
      continue
    }
    const schema = route.schema ?? {}
    t.ok(operation.tags?.length, `${label} has a tag`)
    t.ok(operation.summary, `${label} has a summary`)
    t.ok(operation.responses['200'] ?? operation.responses['201'], `${label} documents its success`)
    t.ok(operation.operationId, `${label} has an operationId`)
    t.notOk(operation.responses['4XX'] ?? operation.responses['5XX'], `${label} lists error statuses, not ranges`)
    const errors = Object.keys(operation.responses).filter((status) => Number(status) >= 400)
    t.ok(errors.includes('500'), `${label} documents 500`)
    if (!route.config?.public) t.ok(errors.includes('401') && errors.includes('503'), `${label} documents 401 and 503`)
    if (schema.body)
      t.ok(
        ['400', '413', '415'].every((s) => errors.includes(s)),
        `${label} documents 400, 413, 415`,
      )
    if (route.schema?.body) t.ok(operation.requestBody, `${label} documents its body`)
    for (const [part, where] of [
      ['params', 'path'],
      ['querystring', 'query'],
    ] as const) {
      const declared = Object.keys((schema[part] as { properties?: object } | undefined)?.properties ?? {})
      const documented = operation.parameters?.filter((p) => p.in === where).map((p) => p.name) ?? []
      t.same(documented.sort(), declared.sort(), `${label} documents its ${where} parameters`)
    }
  }
})

t.test('the document is valid OpenAPI 3.1', async (t) => {
  const { document } = await appWithRoutes(t)
  t.match(document.openapi, /^3\.1\.\d+$/)
  t.match(document.info, { title: 'postgres-queue', version: String })
  t.ok(Object.keys(document.paths).length > 0, 'paths')
  t.ok(document.components.schemas?.ErrorResponse, 'the shared ErrorResponse is a component')
  const result = await new Validator().validate({ ...document })
  t.same(result.errors ?? [], [], 'valid against the OpenAPI 3.1 JSON schema')
  t.ok(result.valid)
})

t.test('with API_TOKEN, every operation needs the bearer token but the probes', async (t) => {
  const { document } = await appWithRoutes(t, { API_TOKEN: 'docs-test-token-0123456789' })
  t.same(document.components.securitySchemes?.bearerAuth, {
    type: 'http',
    scheme: 'bearer',
    description: 'The API_TOKEN the server was started with',
  })
  t.same(document.security, [{ bearerAuth: [] }], 'required by default')
  t.same(document.paths['/health']?.get?.security, [], '/health is open')
  t.same(document.paths['/ready']?.get?.security, [], '/ready is open')
  t.equal(document.paths['/orders']?.post?.security, undefined, 'POST /orders takes the default')
})

t.test('without API_TOKEN, the document requires nothing', async (t) => {
  const { document } = await appWithRoutes(t)
  t.equal(document.security, undefined)
})

t.test('Swagger UI is served at /docs, without the token', async (t) => {
  const { app } = await startApi(t, { env: { API_TOKEN: 'docs-test-token-0123456789' } })
  const page = await app.inject({ method: 'GET', url: '/docs' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, /swagger-ui/i)
  t.equal((await app.inject({ method: 'GET', url: '/docs/json' })).statusCode, 200, 'and its document')
})

t.test('each error the api answers is documented for that operation, with the error shape', async (t) => {
  const { app, document } = await appWithRoutes(t)
  const answered: [operation: string, path: string, method: string, request: InjectOptions][] = [
    ['getOrder', '/orders/{id}', 'get', { method: 'GET', url: '/orders/999999999' }],
    ['getOrder', '/orders/{id}', 'get', { method: 'GET', url: '/orders/abc' }],
    ['cancelOrder', '/orders/{id}/cancel', 'post', { method: 'POST', url: '/orders/999999999/cancel' }],
    ['submitOrder', '/orders', 'post', { method: 'POST', url: '/orders', payload: { customerId: 'c' } }],
    [
      'submitOrder',
      '/orders',
      'post',
      { method: 'POST', url: '/orders', payload: 'x', headers: { 'content-type': 'text/plain' } },
    ],
    [
      'submitOrder',
      '/orders',
      'post',
      { method: 'POST', url: '/orders', payload: {}, headers: { 'sec-fetch-site': 'cross-site' } },
    ],
    ['retryFailedOrders', '/orders/retry', 'post', { method: 'POST', url: '/orders/retry', payload: { limit: -1 } }],
  ]
  for (const [operationId, path, method, request] of answered) {
    const response = await app.inject(request)
    const operation = document.paths[path]?.[method]
    t.equal(operation?.operationId, operationId)
    const documented = operation?.responses[String(response.statusCode)] as
      | { $ref?: string; description?: string }
      | undefined
    t.ok(response.statusCode >= 400, `${operationId} answered ${response.statusCode}`)
    t.match(documented, { description: String }, `${operationId}: ${response.statusCode} is documented`)
    t.match(JSON.stringify(documented), /ErrorResponse/, 'as an ErrorResponse')
  }
})
