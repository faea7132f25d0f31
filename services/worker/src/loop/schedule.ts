import type { Logger } from '@postgres-queue/runtime'
import cron, { type ScheduledTask } from 'node-cron'

export interface Schedule {
  /** Starts ticking; a second call while it ticks does nothing. */
  start(): void
  /** Ends the ticks; resolves once node-cron has let the task go. */
  stop(): Promise<void>
}

/**
 * The worker's safety net: a node-cron schedule that calls `onTick` however quiet the wake-ups
 * are, so a lost notification or a dead LISTEN connection costs at most one interval. A tick
 * waits for the previous one to end (noOverlap) and starts after a random delay of up to
 * `jitterMs`, so replicas don't poll in lockstep.
 */
export function createSchedule({
  cron: expression,
  name,
  jitterMs,
  log,
  onTick,
}: {
  cron: string
  name: string
  jitterMs: number
  log: Logger
  onTick: () => Promise<void>
}): Schedule {
  let task: ScheduledTask | undefined
  return {
    start() {
      task ??= cron.schedule(expression, onTick, {
        name,
        noOverlap: true,
        maxRandomDelay: jitterMs,
        logger: cronLogger(log),
      })
    },
    async stop() {
      await task?.destroy()
      task = undefined
    },
  }
}

/** node-cron's own warnings (e.g. a missed tick on a blocked event loop) go through pino. */
function cronLogger(log: Logger) {
  return {
    info: (message: string) => log.debug({ source: 'node-cron' }, message),
    // A tick skipped because the drain still runs is noOverlap doing its job, not a problem; at warn
    // it would be a line a second for as long as a backlog lasts.
    warn: (message: string) =>
      /overlap/i.test(message)
        ? log.debug({ source: 'node-cron' }, message)
        : log.warn({ source: 'node-cron' }, message),
    error: (message: string | Error, err?: Error) =>
      log.error({ source: 'node-cron', err: err ?? message }, 'node-cron error'),
    debug: (message: string | Error) => log.debug({ source: 'node-cron' }, String(message)),
  }
}
