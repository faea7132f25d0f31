import { processOrder } from './processor.js'
import { runWorker } from './run.js'

await runWorker(process.env, processOrder)
