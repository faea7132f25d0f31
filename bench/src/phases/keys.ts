import type { BenchContext } from '../context.js'
import { processOurs } from '../ours/processing.js'
import { processPeer } from '../peers/processing.js'
import type { ProcessingResult } from '../results.js'
import { DEFAULT_BATCH_SIZE, WORKER_MODES } from '../settings.js'
import { describeProcessing } from './describe.js'

/** Keys the orders are spread over in the many-keys measure: most are blocked at any instant. */
export const MANY_KEYS = 1000

/**
 * Per-key FIFO at the largest process count: ours unkeyed, over 1,000 orderingKeys and on one hot
 * key (each key's orders run one at a time, so that one is strictly sequential), in each mode; then
 * graphile-worker unkeyed, over 1,000 named job queues and on one (its named-queue runs without the local
 * queue, which breaks their serial guarantee: peers/graphile-worker.ts). `sizes.keyRounds` rounds, each
 * system's runs alternating with the other's, so that a ratio compares runs minutes apart at most.
 */
export async function runKeysPhase(ctx: BenchContext): Promise<ProcessingResult[]> {
  const results: ProcessingResult[] = []
  const record = (result: ProcessingResult) => {
    results.push(result)
    ctx.log(describeProcessing(result))
  }
  const workers = Math.max(...ctx.sizes.processingWorkers)
  const many = { keys: MANY_KEYS, jobs: ctx.sizes.keyedOrders }
  const hot = { keys: 1, jobs: ctx.sizes.hotKeyOrders }
  for (let round = 0; round < ctx.sizes.keyRounds; round++) {
    for (const mode of WORKER_MODES) {
      const base = { workers, mode, batchSize: DEFAULT_BATCH_SIZE }
      // Unkeyed with as many orders as the keyed run: a drain's ramp and tail weigh the same.
      record(await processOurs(ctx, { ...base, jobs: many.jobs }))
      record(await processOurs(ctx, { ...base, ...many }))
      record(await processOurs(ctx, { ...base, ...hot }))
    }
    record(await processPeer(ctx, 'graphile-worker', workers, { jobs: many.jobs }))
    record(await processPeer(ctx, 'graphile-worker', workers, { queues: many.keys, jobs: many.jobs }))
    record(await processPeer(ctx, 'graphile-worker', workers, { queues: hot.keys, jobs: hot.jobs }))
  }
  return results
}
