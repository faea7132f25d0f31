import Type from 'typebox'
import { logFormats, logLevels } from './logger.js'

/** The variables every service reads, declared once so the api and the worker cannot drift apart. */
export const commonEnv = {
  DATABASE_URL: Type.String({
    minLength: 1,
    description: 'PostgreSQL connection URL, e.g. postgres://user:password@host:5432/db',
  }),
  DATABASE_SCHEMA: Type.String({
    pattern: '^[a-z_][a-z0-9_]{0,62}$',
    default: 'postgres_queue',
    description: 'the PostgreSQL schema the queue lives in, created by the migration; a plain lower-case identifier',
  }),
  LOG_LEVEL: Type.Union(
    logLevels.map((level) => Type.Literal(level)),
    { default: 'info', description: 'the least severe level logged' },
  ),
  LOG_FORMAT: Type.Union(
    logFormats.map((format) => Type.Literal(format)),
    { default: 'json', description: 'json lines for machines, pretty for a person at a terminal' },
  ),
}
