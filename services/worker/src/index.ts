// For a team that keeps its processor in its own package: `runWorker(process.env, myProcessor)` as a
// process, or `startWorker({ processor, config: loadConfig(process.env) })` inside one of its own.
export { type Host, loadConfig, type WorkerConfig, WorkerEnv } from './config.js'
export type { CommitWork, OrderProcessor, ProcessContext } from './processor.js'
export { processOrder } from './processor.js'
export { runWorker } from './run.js'
export { type RunningWorker, type StartWorkerOptions, startWorker } from './start.js'
export { createWorker, type Worker, type WorkerDeps } from './worker.js'
