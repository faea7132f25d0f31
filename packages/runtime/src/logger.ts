import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino'
import pretty from 'pino-pretty'
import { serializeError } from './serialize-error.js'

export type { Logger }

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export const logFormats = ['json', 'pretty'] as const

export interface LoggerConfig {
  level: (typeof logLevels)[number]
  /** JSON lines for machines (the default), or colourised lines for a person at a terminal. */
  format: (typeof logFormats)[number]
  /** Fields on every line, e.g. `{ service: 'worker', workerId }`. */
  base?: Record<string, unknown>
}

/**
 * The one logger setup for every service: pino, fields first, `err` serialised by serializeError
 * (stack kept, queries and their parameters withheld). Lines go to stdout unless a `destination`
 * is given (tests capture them).
 */
export function createLogger(config: LoggerConfig, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level: config.level,
    base: config.base ?? null,
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: serializeError },
  }
  if (config.format === 'pretty') {
    return pino(options, pretty({ colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'service', destination }))
  }
  return destination ? pino(options, destination) : pino(options)
}
