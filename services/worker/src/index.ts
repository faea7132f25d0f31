// For a team that keeps its processor in its own package: `runWorker(process.env, myProcessor)` as a
// process, or `startWorker({ processor, config: loadConfig(process.env) })` inside one of its own.
export { type Host, loadConfig, type WorkerConfig, WorkerEnv } from './config.js'
export { createWorker, type Worker, type WorkerDeps } from './loop/worker.js'
export { runWorker } from './process/run.js'
export { type RunningWorker, type StartWorkerOptions, startWorker } from './process/start.js'
export type { CommitWork, Order, OrderProcessor, ProcessContext } from './processor.js'
export { processOrder } from './processor.js'
