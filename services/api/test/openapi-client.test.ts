import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import openapiTS, { astToString } from 'openapi-typescript'
import t from 'tap'
import ts from 'typescript'
import { startApi } from './helpers.js'

// What a team does with the document: generate types from /docs/json (openapi-typescript) and call
// the api through a typed client (openapi-fetch). A call written against the generated types must
// type-check, its result and its errors typed; a call with a wrong body must not.

const here = path.dirname(fileURLToPath(import.meta.url))

const CLIENT = `
import createClient from 'openapi-fetch'
import type { paths } from './api.js'

const client = createClient<paths>({ baseUrl: 'http://localhost:3000' })

export async function submitAndRead(): Promise<string> {
  const submitted = await client.POST('/orders', {
    body: { customerId: 'c-1', currency: 'EUR', items: [{ sku: 'SKU-1', quantity: 2, unitPriceCents: 1250 }] },
    headers: { 'idempotency-key': 'order-1' },
  })
  if (submitted.error) {
    const code: string = submitted.error.code
    const status: number = submitted.error.statusCode
    return code + status
  }
  const id: number = submitted.data.id
  const read = await client.GET('/orders/{id}', { params: { path: { id } } })
  if (read.error) return read.error.message
  const status: 'scheduled' | 'waiting' | 'pending' | 'processing' | 'completed' | 'failed' | 'cancelled' = read.data.status
  const page = await client.GET('/orders', { params: { query: { status: 'failed', limit: 10 } } })
  return status + (page.data?.orders.length ?? 0)
}

export async function wrongCalls(): Promise<void> {
  // @ts-expect-error quantity is a number
  await client.POST('/orders', { body: { customerId: 'c', currency: 'EUR', items: [{ sku: 'A', quantity: '2', unitPriceCents: 1 }] } })
  // @ts-expect-error there is no such route
  await client.GET('/order/{id}', { params: { path: { id: 1 } } })
}
`

t.test('a client generated from /docs/json type-checks a real call, and refuses a wrong one', async (t) => {
  const { app } = await startApi(t)
  const document = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  // Inside the package, so the client file resolves openapi-fetch from its node_modules.
  const dir = await mkdtemp(path.join(here, '.generated-client-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(path.join(dir, 'api.ts'), astToString(await openapiTS(document)))
  await writeFile(path.join(dir, 'client.ts'), CLIENT)

  const program = ts.createProgram([path.join(dir, 'client.ts')], {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  })
  const diagnostics = ts
    .getPreEmitDiagnostics(program)
    .map(
      (d) => `${d.file ? path.basename(d.file.fileName) : ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`,
    )
  t.same(diagnostics, [], 'the generated types and the calls type-check (and both wrong calls are errors)')
})
