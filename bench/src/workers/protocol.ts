/**
 * What the bench's worker scripts (our latency worker, the peers' workers) and the bench say to each
 * other over the IPC channel. A job is named by a number `key`: the order id for ours, the `n` in the
 * payload for the peers.
 */
export type ChildMessage =
  /** Started and ready to take jobs. */
  | { type: 'ready' }
  /** Jobs handled so far, sent a few times a second while the count moves. */
  | { type: 'progress'; handled: number }
  /** The handler started on job `key` at `at` (epoch ms, sub-ms); only when BENCH_REPORT_STARTS=1. */
  | { type: 'started'; key: number; at: number }
  /** Every key handled, in order, and when the first and last handler returned. */
  | { type: 'report'; keys: number[]; firstDoneAt: number | null; lastDoneAt: number | null }

export type ParentMessage = { type: 'report' }

/** Set in a worker script's environment to have it send a `started` message per job. */
export const REPORT_STARTS_ENV = 'BENCH_REPORT_STARTS'

/** Set in a worker script's environment to have its handler wait this long per job (an outside call). */
export const PROCESSOR_WAIT_ENV = 'BENCH_PROCESSOR_WAIT_MS'
