// For a team that keeps its processor in its own package: `runWorker(process.env, myProcessor)`.
export { loadConfig, type WorkerConfig, WorkerEnv } from './config.js'
export type { CommitWork, OrderProcessor, ProcessContext } from './processor.js'
export { processOrder } from './processor.js'
export { runWorker } from './run.js'
export { createWorker, type Worker, type WorkerDeps } from './worker.js'
