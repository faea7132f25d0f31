import { extendLeases, type Lease, type LeasedOrder } from '@postgres-queue/db'
import type { ModeDeps } from './mode.js'

/** Heartbeats per lease period: a missed beat or two still leaves the lease alive. */
const HEARTBEATS_PER_LEASE = 3

/** How often a batch's leases are extended. */
export const heartbeatMs = (config: Pick<ModeDeps['config'], 'leaseMs'>) => config.leaseMs / HEARTBEATS_PER_LEASE

/** Extends the batch's leases every heartbeatMs until the returned function is called. */
export function keepLeases(deps: ModeDeps, held: HeldLeases): () => void {
  const heartbeat = setInterval(() => void beat(deps, held), heartbeatMs(deps.config))
  return () => clearInterval(heartbeat)
}

/**
 * The leases a batch holds until each order is completed or released, and until when each surely
 * lasts (performance.now(): when the statement that took or last extended it was sent, + leaseMs).
 */
export class HeldLeases {
  private readonly leases = new Map<
    number,
    { lease: Lease; until: number; abortProcessor?: (reason: unknown) => void; settling?: boolean }
  >()

  constructor(
    leased: readonly LeasedOrder[],
    private readonly leaseMs: number,
    claimedAt: number,
  ) {
    for (const { lease } of leased) this.leases.set(lease.id, { lease, until: claimedAt + leaseMs })
  }

  /** The heartbeat in flight, if any (beat). */
  beating: Promise<void> | undefined

  /** Until when all of these leases surely last (those still held). */
  lastsUntil(ids: readonly number[]): number {
    let until = Number.POSITIVE_INFINITY
    for (const id of ids) until = Math.min(until, this.leases.get(id)?.until ?? until)
    return until
  }

  /**
   * The leases a heartbeat extends: all held but those being completed. Those are locked by the
   * completing transaction (no rescue can take them meanwhile), and an UPDATE of them would wait
   * for it, holding up the extension of every other lease in the statement.
   */
  toExtend(): Lease[] {
    return [...this.leases.values()].filter((held) => !held.settling).map((held) => held.lease)
  }

  isHeld(id: number): boolean {
    return this.leases.has(id)
  }

  /** Keeps the order's abort, called when its lease is found taken over (at once if it was). */
  watchLost(id: number, abort: (reason: unknown) => void): () => void {
    const held = this.leases.get(id)
    if (!held) {
      abort(new Error('lease lost'))
      return () => {}
    }
    held.abortProcessor = abort
    return () => {
      held.abortProcessor = undefined
    }
  }

  /**
   * Records a heartbeat that started at `at` over `beaten`, of which `stillHeld` are held: the
   * others were taken over, unless they were being completed meanwhile (the completion, not a
   * rival, is what they no longer match). Returns the leases lost.
   */
  extended(at: number, beaten: readonly Lease[], stillHeld: ReadonlySet<number>): Lease[] {
    const lost: Lease[] = []
    for (const lease of beaten) {
      const held = this.leases.get(lease.id)
      if (!held) continue
      if (stillHeld.has(lease.id)) held.until = at + this.leaseMs
      if (held.settling || stillHeld.has(lease.id)) continue
      lost.push(lease)
      held.abortProcessor?.(new Error('lease lost: the order was rescued after its lease lapsed'))
      this.leases.delete(lease.id)
    }
    return lost
  }

  /** These orders are being completed: a heartbeat that no longer matches them is not a loss. */
  settling(ids: readonly number[], settling: boolean): void {
    for (const id of ids) {
      const held = this.leases.get(id)
      if (held) held.settling = settling
    }
  }

  drop(ids: readonly number[]): void {
    for (const id of ids) this.leases.delete(id)
  }
}

/**
 * Extends every lease still held; aborts the processors of those taken over. Never rejects. One at
 * a time: a beat that waits on a lock (a migration's, another worker's) is joined, not overlapped by
 * another over the same rows, which could take their locks in another order and deadlock with it.
 * Kept in `held.beating` until it settles: a completion waits for it before locking its rows.
 */
export function beat(deps: ModeDeps, held: HeldLeases): Promise<void> {
  held.beating ??= extendHeld(deps, held).finally(() => {
    held.beating = undefined
  })
  return held.beating
}

async function extendHeld(deps: ModeDeps, held: HeldLeases): Promise<void> {
  const leases = held.toExtend()
  if (leases.length === 0) return
  const started = performance.now()
  try {
    const still = new Set(await extendLeases(deps.db, { leases, leaseMs: deps.config.leaseMs }))
    for (const lease of held.extended(started, leases, still)) {
      deps.log.warn({ orderId: lease.id, attempt: lease.attempt }, 'lease lost to another worker')
      deps.observer.leaseLost(lease.id)
    }
  } catch (err) {
    // Retried on the next beat; if the leases lapse meanwhile, the fenced completion makes sure this
    // worker completes nothing it lost.
    deps.log.warn({ err }, 'lease heartbeat failed')
  }
}
