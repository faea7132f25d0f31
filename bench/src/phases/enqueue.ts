import type { BenchContext } from '../context.js'
import { enqueueOurs } from '../ours/enqueue.js'
import { enqueuePeer } from '../peers/enqueue.js'
import { PEER_NAMES } from '../peers/index.js'
import type { EnqueueResult } from '../results.js'
import { describeEnqueue } from './describe.js'

/** Enqueue: ours over HTTP (and its insert called directly), then each peer's client calls. */
export async function runEnqueuePhase(ctx: BenchContext): Promise<EnqueueResult[]> {
  const results: EnqueueResult[] = []
  for (const run of [() => enqueueOurs(ctx), ...PEER_NAMES.map((peer) => () => enqueuePeer(ctx, peer))]) {
    for (const result of await run()) {
      results.push(result)
      ctx.log(describeEnqueue(result))
    }
  }
  return results
}
