import { type Db, listenForOrders, type Subscription } from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'

export interface Wakeups {
  /** Listens, unless listening already or stopped. Never rejects: without it the worker polls. */
  ensure(): Promise<void>
  /** Drops the subscription and listens afresh (its connection died with an outage). */
  renew(): Promise<void>
  close(): Promise<void>
}

/**
 * The worker's LISTEN subscription: a NOTIFY from the api starts a drain at once (`onWake()`), or
 * names when a scheduled order comes due (`onWake(dueAt)`). The schedule stays the safety net: a
 * lost notification, or a dead LISTEN connection, costs at most one tick.
 */
export function createWakeups({ db, log, onWake }: { db: Db; log: Logger; onWake: (dueAt?: Date) => void }): Wakeups {
  let subscription: Subscription | undefined
  let subscribing: Promise<void> | undefined
  let closed = false

  function subscribe(): Promise<void> {
    subscribing ??= (async () => {
      const previous = subscription
      subscription = undefined
      await previous?.unsubscribe().catch(() => {})
      if (closed) return
      try {
        subscription = await listenForOrders(db, onWake)
      } catch (err) {
        log.debug({ err }, 'could not listen for wake-ups; polling until the next tick')
      }
    })().finally(() => {
      subscribing = undefined
    })
    return subscribing
  }

  return {
    ensure: () => (subscription === undefined ? subscribe() : Promise.resolve()),
    // postgres.js restores a LISTEN connection only once, maybe too early in an outage.
    renew: subscribe,
    async close() {
      closed = true
      await subscribing
      await subscription?.unsubscribe().catch(() => {})
      subscription = undefined
    },
  }
}
