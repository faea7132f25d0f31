export { commonEnv } from './common-env.js'
export { ConfigError, parseEnv } from './env.js'
export { stopThenExit } from './exit.js'
export { createLogger, type Logger, type LoggerConfig, logFormats, logLevels } from './logger.js'
export { serializeError } from './serialize-error.js'
export {
  registerTracing,
  SpanStatusCode,
  startProcessSpan,
  startSubmitSpan,
  startTracing,
  traceContext,
} from './tracing.js'
