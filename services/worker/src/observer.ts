// Who hears of the worker's progress: the fleet heartbeat's counters and the metrics
// (process/fleet.ts, process/metrics.ts), told by the modes and the promoter.

type SettledOutcome = 'completed' | 'retried' | 'dead_lettered'

/** An order whose attempt is over and committed, for counters and metrics. */
export interface OrderSettled {
  orderId: number
  attempt: number
  outcome: SettledOutcome
  /** Absent for an order settled without running (a lapsed lease, an order isolated from a failing batch). */
  waitMs?: number
  processMs?: number
}

export interface WorkerObserver {
  claimed(count: number): void
  settled(event: OrderSettled): void
  leaseLost(orderId: number): void
}

export const ignoreProgress: WorkerObserver = { claimed() {}, settled() {}, leaseLost() {} }

/** Tells several observers the same thing. */
export function observeAll(...observers: WorkerObserver[]): WorkerObserver {
  return {
    claimed: (count) => {
      for (const o of observers) o.claimed(count)
    },
    settled: (event) => {
      for (const o of observers) o.settled(event)
    },
    leaseLost: (id) => {
      for (const o of observers) o.leaseLost(id)
    },
  }
}
