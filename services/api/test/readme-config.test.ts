import { readFileSync } from 'node:fs'
import { WorkerEnv } from '@postgres-queue/worker'
import t from 'tap'
import type { TObject } from 'typebox'
import { ApiEnv } from '../src/config.js'

// The README's configuration table is the operator's reference: it must name every variable the
// services validate at start-up, for the right service, with the default the schema applies.

interface Row {
  services: string
  default: string
}

/** `| \`NAME\` | service | default | meaning |` rows of the table under "## Configuration". */
function readmeTable(): Map<string, Row> {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')
  const section = readme.split(/^## Configuration$/m)[1]?.split(/^## /m)[0] ?? ''
  const rows = new Map<string, Row>()
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim())
    const name = /^`([A-Z0-9_]+)`$/.exec(cells[1] ?? '')?.[1]
    if (name) rows.set(name, { services: cells[2]!, default: cells[3]! })
  }
  return rows
}

const table = readmeTable()
// API_TOKEN is validated apart from ApiEnv (its errors must not quote it): checked here by hand.
const schemas: [service: string, schema: TObject, extra: string[]][] = [
  ['api', ApiEnv, ['API_TOKEN']],
  ['worker', WorkerEnv, []],
]

t.test('the README table has rows to check', async (t) => {
  t.ok(table.size >= 25, `${table.size} rows`)
})

for (const [service, schema, extra] of schemas) {
  t.test(`lists every ${service} variable with the default its schema applies`, async (t) => {
    for (const [name, property] of Object.entries(schema.properties) as [string, { default?: unknown }][]) {
      const row = table.get(name)
      if (!row) {
        t.fail(`${name} is missing from the README's configuration table`)
        continue
      }
      t.match(row.services, new RegExp(`\\b${service}\\b`), `${name} is listed for the ${service}`)
      if (property.default !== undefined) {
        t.equal(row.default, `\`${String(property.default)}\``, `${name} defaults to ${String(property.default)}`)
      } else if (schema.required?.includes(name)) {
        t.match(row.default, /required/, `${name} says it is required`)
      } else {
        t.match(row.default, /^\(|hostname/, `${name} says what unset means`)
      }
    }
    for (const name of extra) t.match(table.get(name)?.services ?? '', new RegExp(`\\b${service}\\b`), name)
  })
}

t.test('lists no api or worker variable that no schema reads', async (t) => {
  const known = new Set(schemas.flatMap(([, schema, extra]) => [...Object.keys(schema.properties), ...extra]))
  for (const [name, row] of table) {
    if (/\b(api|worker)\b/.test(row.services)) t.ok(known.has(name), `${name} is read by the ${row.services}`)
  }
})
