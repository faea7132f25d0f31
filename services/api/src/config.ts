import { ConfigError, commonEnv, type logFormats, type logLevels, parseEnv } from '@postgres-queue/runtime'
import Type, { type Static } from 'typebox'

/**
 * The environment the api reads; `pnpm start` and the Dockerfile set these. API_TOKEN is read apart
 * (see below). Exported for the test that holds the README's configuration table to it.
 */
export const ApiEnv = Type.Object({
  PORT: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: 3000,
    description: 'TCP port to listen on (0 picks a free one)',
  }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0', description: 'interface to listen on' }),
  ...commonEnv,
  DATABASE_POOL_SIZE: Type.Integer({
    minimum: 1,
    maximum: 100,
    default: 10,
    description: 'connections in the api process pool',
  }),
  API_INSERTS_IN_FLIGHT: Type.Integer({
    minimum: 1,
    maximum: 16,
    default: 1,
    description: 'POST /orders inserts running at once; requests arriving meanwhile go together in the next one',
  }),
  DATABASE_CONNECT_TIMEOUT_SECONDS: Type.Integer({
    minimum: 1,
    maximum: 60,
    default: 2,
    description: 'how long a request waits for a new database connection before its 503',
  }),
  DATABASE_STATEMENT_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    maximum: 600_000,
    default: 5000,
    description: 'the longest any statement of the api may run (a lock, a stalled disk) before its 503',
  }),
  API_INTAKE_QUEUE_LIMIT: Type.Integer({
    minimum: 1,
    maximum: 1_000_000,
    default: 5000,
    description: 'POST /orders submissions waiting for an insert; more are refused with 503 INTAKE_SATURATED',
  }),
  API_ALLOWED_ORIGINS: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'comma-separated origins (https://queue.example.com) whose browser pages may change orders through the api, besides its own',
    }),
  ),
  API_REQUEST_TIMEOUT_MS: Type.Integer({
    minimum: 1000,
    maximum: 600_000,
    default: 30_000,
    description: 'the longest a client may take to send a whole request; a slower one is cut off',
  }),
})

/**
 * Checked apart from the schema, whose errors quote the value: a token must never reach a log.
 * Visible ASCII because it travels in a header, where a space or a newline could never match.
 */
const API_TOKEN = /^[\x21-\x7E]{16,}$/

export interface ApiConfig {
  readonly port: number
  readonly host: string
  readonly databaseUrl: string
  /** The PostgreSQL schema the queue lives in. */
  readonly databaseSchema: string
  readonly logLevel: (typeof logLevels)[number]
  readonly logFormat: (typeof logFormats)[number]
  readonly databasePoolSize: number
  readonly databaseConnectTimeoutSeconds: number
  readonly databaseStatementTimeoutMs: number
  readonly intakeQueueLimit: number
  readonly requestTimeoutMs: number
  /** Group commit: single submissions' inserts in flight at once. */
  readonly insertsInFlight: number
  /** Origins besides the api's own whose pages may send state-changing requests (guards.ts). */
  readonly allowedOrigins: readonly string[]
  /** When set, every route but /health and /ready requires `Authorization: Bearer <apiToken>`. */
  readonly apiToken?: string
}

/** The api's configuration from `env`; throws a ConfigError naming every bad variable. */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): ApiConfig {
  const problems: string[] = []
  let parsed: Static<typeof ApiEnv> | undefined
  try {
    parsed = parseEnv(ApiEnv, env)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    problems.push(...err.problems)
  }
  const apiToken = env.API_TOKEN === '' ? undefined : env.API_TOKEN
  if (apiToken !== undefined && !API_TOKEN.test(apiToken)) {
    problems.push('API_TOKEN must be 16 or more visible ASCII characters, no spaces (the value is a secret, not shown)')
  }
  const allowedOrigins = parseOrigins(parsed?.API_ALLOWED_ORIGINS, problems)
  if (parsed === undefined || problems.length > 0) throw new ConfigError(problems)
  return Object.freeze({
    port: parsed.PORT,
    host: parsed.HOST,
    databaseUrl: parsed.DATABASE_URL,
    databaseSchema: parsed.DATABASE_SCHEMA,
    logLevel: parsed.LOG_LEVEL,
    logFormat: parsed.LOG_FORMAT,
    databasePoolSize: parsed.DATABASE_POOL_SIZE,
    databaseConnectTimeoutSeconds: parsed.DATABASE_CONNECT_TIMEOUT_SECONDS,
    databaseStatementTimeoutMs: parsed.DATABASE_STATEMENT_TIMEOUT_MS,
    intakeQueueLimit: parsed.API_INTAKE_QUEUE_LIMIT,
    requestTimeoutMs: parsed.API_REQUEST_TIMEOUT_MS,
    insertsInFlight: parsed.API_INSERTS_IN_FLIGHT,
    allowedOrigins,
    ...(apiToken === undefined ? {} : { apiToken }),
  })
}

/** `https://a.example, http://b.example:8080` as origins, each as a browser's Origin header spells it. */
function parseOrigins(list: string | undefined, problems: string[]): string[] {
  const origins: string[] = []
  for (const entry of (list ?? '').split(',').map((o) => o.trim())) {
    if (entry === '') continue
    const url = URL.canParse(entry) ? new URL(entry) : undefined
    // An origin is a scheme, a host and a port: nothing after them but an optional slash.
    if (url === undefined || url.origin === 'null' || `${url.origin}/` !== `${url.href.replace(/\/$/, '')}/`) {
      problems.push(`API_ALLOWED_ORIGINS: ${JSON.stringify(entry)} is not an origin like https://queue.example.com`)
    } else origins.push(url.origin)
  }
  return origins
}
