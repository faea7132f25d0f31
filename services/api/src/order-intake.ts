import {
  type Db,
  type InsertedOrder,
  insertOrders,
  insertOrdersReturningIds,
  isDatabaseUnavailable,
  type NewOrder,
  notifyOrdersWaiting,
} from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'

export interface OrderIntakeOptions {
  /** The most single submissions coalesced into one insert. */
  maxBatch: number
  /** Inserts in flight at once; more requests queue behind them and go together in the next. */
  maxInFlight: number
  log: Logger
}

export interface OrderIntake {
  /** Stores one order: coalesced with concurrent submissions into one multi-row insert. */
  submit(order: NewOrder): Promise<InsertedOrder>
  /** Stores a batch as one insert, whole or not at all; returns the ids in submission order. */
  submitBatch(orders: readonly NewOrder[]): Promise<number[]>
  /** Wakes listening workers (coalesced with other wake-ups), e.g. after a redrive. */
  wakeWorkers(): void
  /** Waits for queued submissions and wake-ups to settle. */
  flush(): Promise<void>
}

interface Pending {
  order: NewOrder
  resolve: (order: InsertedOrder) => void
  reject: (err: unknown) => void
}

/**
 * Group commit for single submissions, the way a Kafka producer batches: a request that finds an
 * insert slot free is inserted at once (no added latency when idle); requests that arrive while
 * `maxInFlight` inserts run wait, and the next insert takes all of them (up to `maxBatch`) as one
 * statement and one commit. Under load, one fsync then covers dozens of orders instead of one,
 * and each request still gets its own order back.
 *
 * After each commit the workers are woken with one coalesced NOTIFY, sent outside the insert.
 */
export function createOrderIntake(db: Db, options: OrderIntakeOptions): OrderIntake {
  const queue: Pending[] = []
  const running = new Set<Promise<void>>()
  const wake = createWakeup(db, options.log)

  function pump(): void {
    while (running.size < options.maxInFlight && queue.length > 0) {
      const group = queue.splice(0, options.maxBatch)
      const insert = insertGroup(group).finally(() => {
        running.delete(insert)
        pump()
      })
      running.add(insert)
    }
  }

  async function insertGroup(group: Pending[]): Promise<void> {
    try {
      const inserted = await insertOrders(
        db,
        group.map((p) => p.order),
      )
      group.forEach((p, i) => p.resolve(inserted[i] as InsertedOrder))
      wake()
    } catch (err) {
      if (group.length === 1 || isDatabaseUnavailable(err)) {
        for (const p of group) p.reject(err)
        return
      }
      // One order the database refused must not fail the others it was grouped with: retry alone.
      await Promise.all(group.map((p) => insertGroup([p])))
    }
  }

  return {
    submit(order) {
      return new Promise((resolve, reject) => {
        queue.push({ order, resolve, reject })
        pump()
      })
    },

    async submitBatch(orders) {
      const ids = await insertOrdersReturningIds(db, orders)
      wake()
      return ids
    },

    wakeWorkers: wake,

    async flush() {
      while (running.size > 0) await Promise.allSettled([...running])
      await wake.settled()
    },
  }
}

/**
 * A coalescing NOTIFY: at most one in flight, and one more after it if commits happened meanwhile,
 * so every commit is followed by a notification sent after it, and a burst costs two at most.
 */
function createWakeup(db: Db, log: Logger): (() => void) & { settled(): Promise<void> } {
  let inFlight: Promise<void> | undefined
  let again = false
  const send = (): Promise<void> =>
    notifyOrdersWaiting(db)
      .catch((err: unknown) => {
        // Workers poll on their schedule too: a lost wake-up delays pickup, it loses nothing.
        log.warn({ err }, 'could not wake the workers')
      })
      .then(() => {
        if (!again) return
        again = false
        return send()
      })
  const wake = () => {
    if (inFlight) {
      again = true
      return
    }
    inFlight = send().finally(() => {
      inFlight = undefined
    })
  }
  return Object.assign(wake, { settled: async () => void (await inFlight) })
}
