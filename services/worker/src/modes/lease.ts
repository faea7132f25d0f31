import { type LeasedOrder, leaseOrders, releaseLeasedOrders } from '@postgres-queue/db'
import { HeldLeases, keepLeases } from './held-leases.js'
import { type Processed, settle } from './lease-completion.js'
import type { BatchResult, ClaimSize, Mode, ModeDeps } from './mode.js'
import { followUpOf } from './report.js'
import { runProcessor } from './run-processor.js'

/**
 * Lease mode, for processors that wait on other services: no transaction is open while they run.
 *
 * 1. One committed statement leases a batch (status processing, holder, expiry, attempts + 1, a
 *    new fencing token per order).
 * 2. The orders are processed, `concurrency` at a time. A heartbeat extends the lease of EVERY
 *    order the batch holds, waiting, running or done, until it is completed or released: a healthy
 *    worker never loses a lease to a slow neighbour in its batch. A lease found taken over aborts
 *    that order's processor.
 * 3. A short transaction completes them: the fence locks the rows still held under their tokens,
 *    the CommitWork of those runs in fenced savepoints, and the completion and failures are two
 *    set-based statements. Bounded like a transaction-mode batch: a CommitWork starts only if its
 *    whole time fits in WORKER_BATCH_TIMEOUT_MS and before the leases it locks would lapse; the
 *    rest go in the next transaction, their leases extended meanwhile. While the database is away,
 *    completing is retried as long as the leases last; a completion that fails for another reason
 *    is split until the order that breaks it is alone, and that order alone is failed.
 *
 * Two writes per order (lease, completion). A dead worker's orders are rescued once their lease
 * lapses (promoteDueOrders). A graceful stop releases the leases of orders not yet started at once.
 */
export function leaseMode(deps: ModeDeps): Mode {
  return { run: (size) => runLeaseBatch(deps, size) }
}

async function runLeaseBatch(deps: ModeDeps, { limit }: ClaimSize): Promise<BatchResult> {
  const { db, config } = deps
  // Before the claim: the leases last leaseMs from the server's clock during it, so at least this long.
  const claimedAt = performance.now()
  const leased = await leaseOrders(db, { limit, workerId: config.workerId, leaseMs: config.leaseMs })
  deps.observer.claimed(leased.length)
  if (leased.length === 0) return { claimed: 0 }

  const held = new HeldLeases(leased, config.leaseMs, claimedAt)
  const stopBeating = keepLeases(deps, held)
  try {
    const { processed, unstarted } = await processAll(deps, leased, held)
    if (unstarted.length > 0) {
      await releaseLeasedOrders(db, { leases: unstarted.map(({ order, lease }) => ({ ...lease, dueAt: order.runAt })) })
      held.drop(unstarted.map(({ lease }) => lease.id))
      deps.log.info({ orders: unstarted.length }, 'released unstarted leases')
    }
    return { claimed: leased.length, ...followUpOf(await settle(deps, processed, held)) }
  } finally {
    stopBeating()
  }
}

/** Runs the processor on each order, `concurrency` at a time; a stop leaves the rest unstarted, to be released. */
async function processAll(
  deps: ModeDeps,
  leased: readonly LeasedOrder[],
  held: HeldLeases,
): Promise<{ processed: Processed[]; unstarted: LeasedOrder[] }> {
  const processed: Processed[] = []
  const queue = leased.values()
  const next = async (): Promise<void> => {
    // Checked before taking the next order, so a stop leaves it in the queue to be released.
    while (!deps.stopClaiming.aborted && !deps.abandonWork.aborted) {
      const item = queue.next()
      if (item.done) return
      const { order, lease } = item.value
      if (!held.isHeld(order.id)) continue // taken over while it waited: not ours to process
      const waitMs = deps.clock.waitSince(order.runAt)
      const result = await runProcessor(deps.processor, order, {
        workerId: deps.config.workerId,
        attempt: lease.attempt,
        timeoutMs: deps.config.orderTimeoutMs,
        abandonWork: deps.abandonWork,
        watchLost: (abort) => held.watchLost(order.id, abort),
        log: deps.log,
      })
      processed.push({ order, attempt: lease.attempt, waitMs, result, lease })
    }
  }
  await Promise.all(Array.from({ length: Math.min(deps.config.concurrency, leased.length) }, next))
  return { processed, unstarted: [...queue] }
}
