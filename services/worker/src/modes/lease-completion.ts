import { setTimeout as sleep } from 'node:timers/promises'
import {
  keysOf,
  type Lease,
  type LeaseSettlement,
  type LeaseSettlementInput,
  lockLeasedOrders,
  type Settlement,
  settleLeasedBatch,
  settleLeasedOrders,
} from '@postgres-queue/db'
import { runCommitWork } from './commit-work.js'
import { beat, type HeldLeases, heartbeatMs } from './held-leases.js'
import { breaksItsBatch, partsToIsolate } from './isolate.js'
import type { ModeDeps } from './mode.js'
import { type ProcessedOrder, reportOrder } from './report.js'
import { describeError } from './thrown.js'

/** Pauses between tries to complete while the database is away, as long as the leases last. */
const SETTLE_RETRY_MS = [100, 250, 500, 1000, 2000]

/** A leased order, processed. */
export type Processed = ProcessedOrder & { lease: Lease }

/**
 * Completes the processed orders, fenced; returns the failures recorded and the keys' next orders
 * promoted. Retries while the database is away and the leases last; splits a completion that fails
 * for another reason.
 */
export async function settle(deps: ModeDeps, processed: Processed[], held: HeldLeases): Promise<Settlement> {
  const mine = processed.filter((p) => held.isHeld(p.order.id))
  for (const p of processed) {
    if (!held.isHeld(p.order.id)) logLost(deps, p)
  }
  if (mine.length === 0) return { failed: [], promoted: [] }
  for (let retry = 0; ; retry++) {
    try {
      return await completeProcessed(deps, mine, held)
    } catch (err) {
      if (deps.abandonWork.aborted) throw err
      if (!(await breaksItsBatch(deps.db, err))) {
        const pause = SETTLE_RETRY_MS[Math.min(retry, SETTLE_RETRY_MS.length - 1)] as number
        if (performance.now() + pause < held.lastsUntil(mine.map((p) => p.order.id))) {
          deps.log.debug({ err, orders: mine.length }, 'could not complete; retrying while the leases last')
          await sleep(pause)
          continue
        }
        // The leases lapse: the rescue counts this attempt and the orders are processed again.
        throw err
      }
      if (mine.length === 1) return failAlone(deps, mine[0] as Processed, err, held)
      deps.log.warn(
        { err, orders: mine.length },
        'completing a batch failed; splitting it to isolate the order that breaks it',
      )
      const parts: Settlement[] = []
      for (const part of partsToIsolate(mine, err)) parts.push(await settle(deps, part, held))
      return joined(parts)
    }
  }
}

/**
 * Settles the processed orders, fenced on their leases' tokens; then the log lines. Orders without
 * CommitWork are settled by one statement, committed on its own; those with it are locked first, in
 * a transaction their CommitWork runs in, and settled with its commit: as many as fit in one such
 * transaction (settleWithCommitWork), then the rest in the next.
 */
async function completeProcessed(deps: ModeDeps, processed: Processed[], held: HeldLeases): Promise<Settlement> {
  const parts: Settlement[] = []
  for (let rest = processed; rest.length > 0; ) {
    const ids = rest.map((p) => p.order.id)
    // A completing transaction's rows are not extended while it holds them (an extension would wait
    // on its locks): each must have time left for at least one CommitWork and a heartbeat after it.
    if (performance.now() + deps.config.orderTimeoutMs > held.lastsUntil(ids) - heartbeatMs(deps.config)) {
      await beat(deps, held)
    }
    held.settling(ids, true)
    // A heartbeat sent before they were marked may still be updating them: locking them meanwhile
    // would wait for it while it waits for the rows this transaction locked first, a deadlock.
    await held.beating
    const outcome = await (rest.some(hasCommitWork)
      ? settleWithCommitWork(deps, rest, held)
      : settleAlone(deps, rest)
    ).finally(() => held.settling(ids, false))
    held.drop(outcome.settled.map((p) => p.order.id))
    const failures = new Map(outcome.failed.map((f) => [f.id, f]))
    const completed = new Set(outcome.completed)
    for (const p of outcome.settled) {
      if (completed.has(p.order.id) || failures.has(p.order.id))
        reportOrder(deps.log, deps.observer, p, failures.get(p.order.id))
      else logLost(deps, p)
    }
    parts.push(outcome)
    rest = outcome.rest
  }
  return joined(parts)
}

function joined(parts: readonly Settlement[]): Settlement {
  return { failed: parts.flatMap((p) => p.failed), promoted: parts.flatMap((p) => p.promoted) }
}

const hasCommitWork = (p: Processed) => p.result.ok && p.result.commit !== undefined

interface Settled extends LeaseSettlement {
  /** What this transaction settled (or found lost), in order. */
  settled: Processed[]
  /** What did not fit: for the next transaction. */
  rest: Processed[]
}

async function settleAlone(deps: ModeDeps, processed: Processed[]): Promise<Settled> {
  const outcome = await settleLeasedOrders(deps.db, settlement(deps, processed))
  return { ...outcome, settled: processed, rest: [] }
}

/**
 * One completing transaction: locks the orders still held, runs their CommitWork in order while the
 * next one's whole time fits in the budget (WORKER_BATCH_TIMEOUT_MS) and ends before the earliest of
 * their leases would lapse (the rows are locked, so no rescue takes them meanwhile, but a transaction
 * that then fails must leave them time to be extended), and commits what it settled. At least one.
 */
async function settleWithCommitWork(deps: ModeDeps, processed: Processed[], held: HeldLeases): Promise<Settled> {
  const { orderTimeoutMs, batchTimeoutMs } = deps.config
  const deadline = Math.min(
    performance.now() + batchTimeoutMs,
    held.lastsUntil(processed.map((p) => p.order.id)) - heartbeatMs(deps.config),
  )
  const { tx, held: locked } = await lockLeasedOrders(deps.db, { leases: processed.map((p) => p.lease) })
  try {
    const settled: Processed[] = []
    let ranCommitWork = false
    for (const p of processed) {
      if (!locked.has(p.order.id) || !hasCommitWork(p)) {
        settled.push(p)
        continue
      }
      if (ranCommitWork && performance.now() + orderTimeoutMs > deadline) break
      ranCommitWork = true
      settled.push({ ...(await runCommitWork(tx, p, { timeoutMs: orderTimeoutMs })), lease: p.lease })
    }
    const outcome = await settleLeasedBatch(
      tx,
      settlement(
        deps,
        settled.filter((p) => locked.has(p.order.id)),
      ),
    )
    return { ...outcome, settled, rest: processed.slice(settled.length) }
  } catch (err) {
    await tx.rollback()
    throw err
  }
}

function settlement(deps: ModeDeps, processed: Processed[]): LeaseSettlementInput {
  const succeeded: Lease[] = []
  const failures: LeaseSettlementInput['failures'][number][] = []
  for (const { lease, result } of processed) {
    if (result.ok) succeeded.push(lease)
    else failures.push({ ...lease, error: result.error })
  }
  const succeededKeys = keysOf(processed.filter((p) => p.result.ok).map((p) => p.order))
  return { succeeded, succeededKeys, failures, workerId: deps.config.workerId, policy: deps.config.retry }
}

/** The order whose completion breaks its transaction even alone: its attempt fails, fenced, on its own. */
async function failAlone(deps: ModeDeps, p: Processed, cause: unknown, held: HeldLeases): Promise<Settlement> {
  const error = describeError(new Error(`completing this order failed, even alone: ${describeError(cause)}`))
  const { lease } = p
  const settled = await settleLeasedOrders(deps.db, {
    succeeded: [],
    failures: [{ ...lease, error }],
    workerId: deps.config.workerId,
    policy: deps.config.retry,
  })
  held.drop([lease.id])
  const [outcome] = settled.failed
  deps.log.error(
    { orderId: lease.id, attempt: lease.attempt, err: cause },
    'completing the order breaks its transaction',
  )
  if (outcome) {
    deps.observer.settled({
      orderId: lease.id,
      attempt: lease.attempt,
      outcome: outcome.status === 'failed' ? 'dead_lettered' : 'retried',
    })
  }
  return settled
}

/** A processed order this worker no longer holds: found by a heartbeat, or by the completion's fence. */
function logLost(deps: ModeDeps, { order, attempt }: ProcessedOrder): void {
  deps.log.warn({ orderId: order.id, attempt }, 'lease lost; the order is left to its new holder')
}
