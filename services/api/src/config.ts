import { commonEnv, type logFormats, type logLevels, parseEnv } from '@postgres-queue/runtime'
import Type from 'typebox'

/** The environment the api reads; `pnpm start` and the Dockerfile set these. */
const ApiEnv = Type.Object({
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
})

export interface ApiConfig {
  readonly port: number
  readonly host: string
  readonly databaseUrl: string
  readonly logLevel: (typeof logLevels)[number]
  readonly logFormat: (typeof logFormats)[number]
  readonly databasePoolSize: number
}

/** The api's configuration from `env`; throws a ConfigError naming every bad variable. */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): ApiConfig {
  const parsed = parseEnv(ApiEnv, env)
  return Object.freeze({
    port: parsed.PORT,
    host: parsed.HOST,
    databaseUrl: parsed.DATABASE_URL,
    logLevel: parsed.LOG_LEVEL,
    logFormat: parsed.LOG_FORMAT,
    databasePoolSize: parsed.DATABASE_POOL_SIZE,
  })
}
