import { runWorker } from './process/run.js'
import { processOrder } from './processor.js'

await runWorker(process.env, processOrder)
