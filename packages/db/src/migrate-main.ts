import { DEFAULT_SCHEMA } from './client.js'
import { migrateWhenReachable } from './migrate.js'

// The `migrate` one-shot of docker compose and Kubernetes, and `pnpm db:migrate`.

/** Long enough for a PostgreSQL started beside the migration to come up, even on a busy host. */
const WAIT_FOR_DATABASE_MS = 60_000

const url = process.env.DATABASE_URL
if (!url) {
  console.error('DATABASE_URL is required: the PostgreSQL database to migrate')
  process.exit(2)
}
const schema = process.env.DATABASE_SCHEMA || DEFAULT_SCHEMA
// One time format for every service: ISO, as pino's isoTime writes it.
const log = (level: number, fields: Record<string, unknown>, msg: string) =>
  console.log(JSON.stringify({ level, time: new Date().toISOString(), service: 'migrate', ...fields, msg }))

await migrateWhenReachable(url, {
  schema,
  timeoutMs: WAIT_FOR_DATABASE_MS,
  onRetry: (err, attempt) => log(40, { attempt, err: errorSummary(err) }, 'database not reachable yet; retrying'),
})
log(30, { schema }, 'database migrated')

/**
 * The driver's error, innermost in the chain (drizzle's wrapper carries the statement's text and
 * parameters, which stay out of logs): "ECONNREFUSED: connect ECONNREFUSED 172.18.0.2:5432".
 */
function errorSummary(err: unknown): string {
  let inner = err
  while (inner instanceof Error && inner.cause instanceof Error) inner = inner.cause
  if (!(inner instanceof Error)) return String(inner)
  const code = (inner as { code?: unknown }).code
  return typeof code === 'string' ? `${code}: ${inner.message}` : inner.message
}
