import { fileURLToPath } from 'node:url'
import { type ServiceProcess, startService } from './processes.js'

/**
 * Fixture entry points are built by `pnpm build` (test/fixtures/tsconfig.json) and run as plain
 * JavaScript against the workspace's built packages. Run through tap's loader instead, ts-node
 * would compile the fixture and every workspace source it imports: 3.7 s of CPU to load the worker,
 * against 0.8 s built (measured), and the chaos tests start a replacement every second or two.
 */
const effectWorker = fileURLToPath(new URL('../fixtures/dist/effect-worker.js', import.meta.url))

/**
 * A real worker process running `test/fixtures/effect-worker.ts`, named by its worker id: one
 * order_effects row per order it completes. `env` adds to the defaults (a tick every second, little jitter); see the fixture for
 * PROCESS_MS, POISON_CUSTOMER and POISON_BEHAVIOUR.
 */
export function startEffectWorker(workerId: string, env: Record<string, string>): ServiceProcess {
  return startService(workerId, [effectWorker], {
    WORKER_ID: workerId,
    WORKER_CRON: '* * * * * *',
    WORKER_JITTER_MS: '100',
    ...env,
  })
}
