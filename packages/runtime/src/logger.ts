import { createRequire } from 'node:module'
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino'
import type PinoPretty from 'pino-pretty'
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
 * (stack kept, queries and their parameters withheld). Lines go to stdout (stdoutByTurn) unless a
 * `destination` is given (tests capture them).
 */
export function createLogger(config: LoggerConfig, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level: config.level,
    base: config.base ?? null,
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: serializeError },
  }
  if (config.format === 'pretty') {
    // Loaded only when asked for: JSON, the default, need not pay for it at every start-up. Resolved
    // from the running file: in a service's bundled dist/main.js that is the service, which depends
    // on pino-pretty for this reason.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty
    // One line per entry, fields inline: a person reads one line per order, as with JSON.
    return pino(
      options,
      pretty({ colorize: true, singleLine: true, translateTime: 'HH:MM:ss.l', ignore: 'service', destination }),
    )
  }
  return pino(options, destination ?? stdoutByTurn())
}

let stdout: DestinationStream | undefined

/**
 * stdout for every logger of the process, written once per event-loop turn rather than once per
 * line: a batch's lines (one per order) leave in one write(), which takes what a line costs the
 * worker from about 8 to 5 µs (docs/performance.md). A line waits at most for the turn it was
 * logged in to end; on exit, however the process ends short of SIGKILL, what waits is written
 * synchronously. The write itself is pino's own stdout stream (sonic-boom: partial writes, EAGAIN
 * and a closed pipe handled).
 */
function stdoutByTurn(): DestinationStream {
  if (stdout) return stdout
  const out = pino.destination({ dest: 1, sync: true })
  let pending: string[] = []
  const writePending = () => {
    if (pending.length === 0) return
    const text = pending.join('')
    pending = []
    out.write(text)
  }
  process.on('exit', writePending)
  stdout = {
    write(line: string) {
      if (pending.push(line) === 1) setImmediate(writePending)
    },
  }
  return stdout
}
