import {
  completeLeasedOrders,
  extendLeases,
  failLeasedOrders,
  type Lease,
  type LeasedOrder,
  leaseOrders,
  lockLeasedOrders,
  releaseLeasedOrders,
} from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import { type ProcessedOrder, reportOrder, runCommitWork, waitSince } from './outcomes.js'
import { runProcessor } from './run-processor.js'
import type { BatchDeps } from './transaction-batch.js'

/** Heartbeats per lease period: a missed beat or two still leaves the lease alive. */
const HEARTBEATS_PER_LEASE = 3

/**
 * Lease mode, for processors that wait on other services: no transaction is open while they run.
 *
 * 1. One committed statement leases a batch (status processing, holder, expiry, attempts + 1).
 * 2. The orders are processed, `concurrency` at a time, while a heartbeat extends their leases.
 *    A lease found taken over (it lapsed) aborts that order's processor.
 * 3. One short transaction completes them: the fence locks the rows this worker still holds in
 *    these attempts, the CommitWork of those runs in savepoints, and the completion and failures
 *    are two set-based statements. A worker whose lease lapsed completes nothing.
 *
 * Two writes per order (lease, completion). A dead worker's orders are claimable again once their
 * lease lapses (`leaseMs`). A graceful stop releases the leases of orders not yet started at once.
 *
 * Returns how many orders the claim touched, so the loop knows whether the queue may hold more.
 */
export async function runLeaseBatch(deps: BatchDeps): Promise<number> {
  const { db, config, log } = deps
  const { workerId, leaseMs } = config
  const { leased, deadLettered } = await leaseOrders(db, { limit: config.batchSize, workerId, leaseMs })
  deps.observer.claimed(leased.length)
  for (const order of deadLettered) {
    log.error({ orderId: order.id, workerId, attempts: order.attempts, error: order.lastError }, 'order dead-lettered')
    deps.observer.settled({ orderId: order.id, attempt: order.attempts, outcome: 'dead_lettered' })
  }
  if (leased.length === 0) return deadLettered.length

  const inFlight = new Map<number, { lease: Lease; abort: AbortController }>()
  const heartbeat = startHeartbeat(deps, inFlight)
  const processed: ProcessedOrder[] = []
  const queue = leased.values()
  const processNext = async (): Promise<void> => {
    // Check before taking the next order, so a stop leaves it in the queue to be released.
    while (!deps.draining.aborted && !deps.stop.aborted) {
      const next = queue.next()
      if (next.done) return
      processed.push(await processOne(deps, next.value, inFlight))
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(config.concurrency, leased.length) }, processNext))
  } finally {
    clearInterval(heartbeat)
  }

  const unstarted = [...queue].map(({ order, attempt }) => ({ id: order.id, attempt }))
  if (unstarted.length > 0) {
    await releaseLeasedOrders(db, { leases: unstarted, workerId })
    log.info({ workerId, orders: unstarted.length }, 'released unstarted leases')
  }
  await completeProcessed(deps, processed)
  return leased.length + deadLettered.length
}

async function processOne(
  deps: BatchDeps,
  { order, attempt }: LeasedOrder,
  inFlight: Map<number, { lease: Lease; abort: AbortController }>,
): Promise<ProcessedOrder> {
  const abort = new AbortController()
  inFlight.set(order.id, { lease: { id: order.id, attempt }, abort })
  const waitMs = waitSince(order)
  try {
    const result = await runProcessor(deps.processor, order, {
      workerId: deps.config.workerId,
      attempt,
      timeoutMs: deps.config.orderTimeoutMs,
      stop: AbortSignal.any([deps.stop, abort.signal]),
      log: deps.log,
    })
    return { order, attempt, waitMs, result }
  } finally {
    inFlight.delete(order.id)
  }
}

/** Extends the leases of the orders in flight; aborts the processors of those taken over. */
function startHeartbeat(deps: BatchDeps, inFlight: Map<number, { lease: Lease; abort: AbortController }>) {
  const { db, config, log } = deps
  const beat = async () => {
    const beating = [...inFlight.values()]
    if (beating.length === 0) return
    const held = new Set(
      await extendLeases(db, { leases: beating.map((f) => f.lease), workerId: config.workerId, leaseMs: config.leaseMs }),
    )
    for (const { lease, abort } of beating) {
      if (held.has(lease.id) || !inFlight.has(lease.id)) continue
      log.warn({ orderId: lease.id, workerId: config.workerId, attempt: lease.attempt }, 'lease lost to another worker')
      deps.observer.leaseLost(lease.id)
      abort.abort(new Error('lease lost: another worker took the order over'))
    }
  }
  return setInterval(() => {
    // A failed heartbeat (database unreachable) is retried on the next beat; if the lease lapses
    // meanwhile, the fenced completion makes sure this worker completes nothing it lost.
    beat().catch((err: unknown) => log.warn({ err, workerId: config.workerId }, 'lease heartbeat failed'))
  }, config.leaseMs / HEARTBEATS_PER_LEASE)
}

/** The completing transaction: fence, commit work, completion and failures, then the log lines. */
async function completeProcessed(deps: BatchDeps, processed: ProcessedOrder[]): Promise<void> {
  const { db, config, log } = deps
  const { workerId } = config
  const leases = processed.map(({ order, attempt }) => ({ id: order.id, attempt }))
  const outcome = await db.transaction(async (tx) => {
    const held = new Set(await lockLeasedOrders(tx, { leases, workerId }))
    const settled: ProcessedOrder[] = []
    for (const p of processed) {
      if (held.has(p.order.id)) settled.push(await runCommitWork(tx, p, config.orderTimeoutMs))
    }
    const succeeded = settled.filter((p) => p.result.ok).map(({ order, attempt }) => ({ id: order.id, attempt }))
    const failures = settled.flatMap(({ order, attempt, result }) =>
      result.ok ? [] : [{ id: order.id, attempt, error: result.error }],
    )
    await completeLeasedOrders(tx, { leases: succeeded, workerId })
    const failed = await failLeasedOrders(tx, { failures, workerId, policy: config.retry })
    return { held, settled, failed }
  })
  const failures = new Map(outcome.failed.map((f) => [f.id, f]))
  for (const p of outcome.settled) reportOrder(log, deps.observer, workerId, p, failures.get(p.order.id))
  for (const p of processed) {
    if (!outcome.held.has(p.order.id)) logLost(log, workerId, p)
  }
}

function logLost(log: Logger, workerId: string, { order, attempt }: ProcessedOrder): void {
  log.warn({ orderId: order.id, workerId, attempt }, 'lease lapsed before completion; the order is left to its new holder')
}
