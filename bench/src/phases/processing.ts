import type { BenchContext } from '../context.js'
import { processOurs } from '../ours/processing.js'
import { PEER_NAMES } from '../peers/index.js'
import { processPeer } from '../peers/processing.js'
import type { ProcessingResult } from '../results.js'
import { DEFAULT_BATCH_SIZE, WORKER_MODES } from '../settings.js'
import { describeProcessing } from './describe.js'

/**
 * Processing: preloaded jobs, no-op handler, 1 and 3 worker processes; ours in each worker mode
 * (and transaction mode again at LOG_LEVEL=info),
 * then each peer, so the three systems alternate rather than one running while the machine is
 * warmer. Then ours with each extra batch size at the largest process count.
 */
export async function runProcessingPhase(ctx: BenchContext): Promise<ProcessingResult[]> {
  const results: ProcessingResult[] = []
  const record = (result: ProcessingResult) => {
    results.push(result)
    ctx.log(describeProcessing(result))
  }
  for (const workers of ctx.sizes.processingWorkers) {
    for (const mode of WORKER_MODES) record(await processOurs(ctx, { workers, mode, batchSize: DEFAULT_BATCH_SIZE }))
    // The default log level writes a line per order: its cost, beside the warn figure just taken.
    record(await processOurs(ctx, { workers, mode: 'transaction', batchSize: DEFAULT_BATCH_SIZE, logLevel: 'info' }))
    for (const peer of PEER_NAMES) record(await processPeer(ctx, peer, workers))
  }
  const most = Math.max(...ctx.sizes.processingWorkers)
  for (const batchSize of ctx.sizes.extraBatchSizes) {
    for (const mode of WORKER_MODES) record(await processOurs(ctx, { workers: most, mode, batchSize }))
  }
  return results
}
