import { BENCH_ORDER } from '../ours/orders.js'
import type { System } from '../results.js'

/**
 * A peer's job: the order ours stores (BENCH_ORDER), as the job's payload, and `n`, a number the
 * worker scripts report back, so the bench can check each ran exactly once. The same content in
 * every system: with `{ n }` alone (until 2026-12-07) a peer's job carried about 10 bytes against the
 * order's 90, and graphile-worker's bulk insert ran 1.4-1.7x as fast as with the order.
 */
export const jobPayload = (n: number) => ({ ...BENCH_ORDER, n })

/** What the bench needs from a peer library, on the submitting side. */
export interface Peer {
  system: Exclude<System, 'ours'>
  /** The worker script (bench/src/peers/*-worker.ts) the bench starts one process of per worker. */
  script: string
  /** The schema its tables live in. */
  schema: string
  /**
   * Adds jobs n = 0 .. count-1 in bulk calls; with `queues`, spread round-robin over that many
   * named queues whose jobs run one at a time, in order (graphile-worker's job queues; only it).
   */
  preload(count: number, queues?: number): Promise<void>
  /** One job, one call: the peer's plain enqueue. */
  addOne(n: number): Promise<void>
  /** Many jobs, one call. */
  addMany(ns: readonly number[]): Promise<void>
  /** Jobs of the bench queue still not completed in the peer's own table. */
  remaining(): Promise<number>
  /** Jobs stored in the peer's table, whatever their state. */
  stored(): Promise<number>
  /**
   * What the peer's table says after `expected` jobs were processed: problems, or none. Only the
   * table's view; the worker scripts' own counts are checked besides.
   */
  checkTable(expected: number): Promise<string[]>
  /**
   * When each job's completion was written (epoch ms, by its `n`), where the peer's table keeps it;
   * undefined where it does not (graphile-worker deletes a completed job).
   */
  completionTimes(): Promise<Map<number, number> | undefined>
  close(): Promise<void>
}

/** Jobs per bulk call when preloading. */
export const PRELOAD_CHUNK = 5000

export function chunks(count: number, size: number): number[][] {
  const out: number[][] = []
  for (let start = 0; start < count; start += size) {
    out.push(Array.from({ length: Math.min(size, count - start) }, (_, i) => start + i))
  }
  return out
}
