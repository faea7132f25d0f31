import type { BenchContext } from '../context.js'
import { processOurs } from '../ours/processing.js'
import type { ProcessingResult } from '../results.js'
import { DEFAULT_BATCH_SIZE, WORKER_MODES } from '../settings.js'
import { describeProcessing } from './describe.js'

/** Empty-table and history runs, measured in turn this many times each; the report compares their means. */
const HISTORY_PAIRS = 2

/**
 * Scale, ours only: the processing run with 1, 2, 3 and 6 workers (the default mode and batch), and
 * once more with a million completed orders already in the table. The claim reads a partial index
 * of claimable orders only, so history should cost nothing: this checks it.
 *
 * A worker count the processing phase already ran in the same configuration is taken from it (the
 * run would be identical; the time goes to the 15-minute budget instead), except the history run's
 * own: that one runs again before each history run, so the pairs compared are measured back to back
 * rather than minutes apart on a machine whose load drifts.
 */
export async function runScalePhase(
  ctx: BenchContext,
  earlier: readonly ProcessingResult[],
): Promise<ProcessingResult[]> {
  const mode = WORKER_MODES[0]
  const options = { mode, batchSize: DEFAULT_BATCH_SIZE }
  const results: ProcessingResult[] = []
  const run = async (workers: number, historyRows = 0, delayedRows = 0) => {
    const result = await processOurs(ctx, { ...options, workers, historyRows, delayedRows })
    results.push(result)
    ctx.log(describeProcessing(result))
  }
  for (const workers of ctx.sizes.scaleWorkers.filter((w) => w !== ctx.sizes.historyWorkers)) {
    const same = earlier.find(
      (r) =>
        r.system === 'ours' &&
        r.mode === mode &&
        r.batchSize === DEFAULT_BATCH_SIZE &&
        (r.logLevel ?? 'warn') === 'warn' &&
        r.workers === workers &&
        r.historyRows === 0 &&
        r.delayedRows === 0,
    )
    if (same) results.push({ ...same, label: `${same.label} (the processing phase's run)` })
    else await run(workers)
  }
  // Alternating pairs: at 3 processes the machine is CPU-bound and one run of ~10 s varies by ±10%,
  // as much as the effect measured (a single pair once read -14%, then +19% in another run).
  for (let pair = 0; pair < HISTORY_PAIRS; pair += 1) {
    await run(ctx.sizes.historyWorkers)
    ctx.log(`loading ${ctx.sizes.historyRows.toLocaleString('en')} completed orders`)
    await run(ctx.sizes.historyWorkers, ctx.sizes.historyRows)
  }
  // The same for a delayed backlog: scheduled orders of a higher priority must cost the claim
  // nothing (it reads an index of due orders only), where a claim walking all of them in priority
  // order would step over every one before each due order.
  for (let pair = 0; pair < HISTORY_PAIRS; pair += 1) {
    await run(ctx.sizes.historyWorkers)
    ctx.log(`loading ${ctx.sizes.delayedRows.toLocaleString('en')} delayed orders of higher priority`)
    await run(ctx.sizes.historyWorkers, 0, ctx.sizes.delayedRows)
  }
  return results.sort((a, b) => a.delayedRows - b.delayedRows || a.historyRows - b.historyRows || a.workers - b.workers)
}
