import { ConfigError, createLogger, startTracing, stopThenExit } from '@postgres-queue/runtime'
import closeWithGrace from 'close-with-grace'
import { loadConfig, type WorkerConfig } from '../config.js'
import type { OrderProcessor } from '../processor.js'
import { loadProcessor } from './processor-module.js'
import { type RunningWorker, startWorker } from './start.js'

/** Past the worker's own bounded stop: only a bug in it runs into this. */
const SHUTDOWN_MARGIN_MS = 10_000
/** After a stall, past the batches' shutdown bound: time for their rollbacks and the last log lines. */
const STALLED_EXIT_MARGIN_MS = 1000

/**
 * A worker process: config, logger, signals and exit codes around startWorker. `main.ts` calls it
 * with the team's processor; a team's own entry point can call it with theirs. SIGTERM or SIGINT
 * stop the worker gracefully (also while it is still starting) and exit 0; a second signal, or the
 * stop outliving its bound, exits at once; a bad configuration exits 2 with a message naming it; a
 * connection to the database that goes silent without closing stops it and exits 1 (onStalled).
 * With the standard OTEL_* variables set, it exports its spans (startTracing). WORKER_PROCESSOR names
 * a module to take the processor from instead of `given` (a team's own, in the stock image).
 */
export async function runWorker(env: NodeJS.ProcessEnv, given: OrderProcessor): Promise<void> {
  const { config, processor } = await configure(env, given)
  const log = createLogger(config.log)
  // Spans go to the provider registered here (OTEL_* variables; off by default).
  const stopTracing = await startTracing('postgres-queue-worker', env)
  let running: Promise<RunningWorker | undefined> | undefined
  const stop = async () => {
    const worker = await running
    await worker?.stop()
    await stopTracing()
    log.flush()
  }
  // Installed before the worker starts: a signal during start-up stops it too.
  const grace = closeWithGrace(
    // The worker bounds its own stop; this outer limit only catches a bug in it.
    {
      delay: config.shutdownTimeoutMs + SHUTDOWN_MARGIN_MS,
      logger: { error: (message: string) => log.error(message) },
    },
    async ({ signal, err }) => {
      if (err) log.error({ err }, 'worker crashed; stopping')
      else log.info({ signal }, 'stopping')
      await stop()
    },
  )
  running = startWorker({
    processor,
    config,
    log,
    // A connection that went silent holds its batch for good: stop, and exit 1 for the
    // orchestrator to start a process with fresh connections. Batches on live connections get the
    // usual WORKER_SHUTDOWN_TIMEOUT_MS; the stop itself may never end (the silent batch's rollback
    // does not return), so the exit waits no longer than that.
    onStalled() {
      grace.uninstall()
      stopThenExit(stop, config.shutdownTimeoutMs + STALLED_EXIT_MARGIN_MS)
    },
  }).catch((err: unknown) => {
    log.fatal({ err }, 'worker failed to start')
    process.exitCode = 1
    return undefined
  })
  if ((await running) === undefined) process.exit(1)
}

/** The config and the processor, or exit 2 with a message naming what is wrong. */
async function configure(
  env: NodeJS.ProcessEnv,
  given: OrderProcessor,
): Promise<{ config: Readonly<WorkerConfig>; processor: OrderProcessor }> {
  try {
    const config = loadConfig(env)
    const processor = config.processorModule === undefined ? given : await loadProcessor(config.processorModule)
    return { config, processor }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    console.error(err.message)
    process.exit(2)
  }
}
