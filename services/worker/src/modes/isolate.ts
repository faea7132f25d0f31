import { type Db, databaseAnswers, isDatabaseUnavailable, isTransientDatabaseError } from '@postgres-queue/db'

// Both modes settle a set of orders in one transaction. When that transaction fails because of an
// order in it, retrying the set as it is would fail again, on every tick, with the good orders in
// it processed each time: the set is run again in two parts, each of which does the same on its
// own failure, until the order that breaks it is alone, and that order alone is failed.

/**
 * Whether a set whose transaction failed with `err` is broken by an order in it, so splitting it
 * finds that order, rather than failed by the moment (a lock or statement timeout, a deadlock, the
 * database away), which is retried as it is. A lost connection is the set's own doing when the
 * database still answers: something in it ended its session (a CommitWork that terminates it, a
 * processor that blocked the event loop past the session's idle timeout), and it would again.
 */
export async function breaksItsBatch(db: Db, err: unknown): Promise<boolean> {
  if (!isTransientDatabaseError(err)) return true
  return isDatabaseUnavailable(err) && (await databaseAnswers(db))
}

/**
 * The two parts to run apart. Halves, so the breaking order is alone after log2(set) runs; but a
 * session that ended under the set most likely ended under the order in hand (`inHand`), and that
 * order alone first costs two runs of the set instead of log2: in transaction mode, each run of an
 * order that blocks the event loop blocks the worker for as long again.
 */
export function partsToIsolate<T>(items: readonly T[], err: unknown, inHand?: T): [T[], T[]] {
  if (inHand !== undefined && items.includes(inHand) && isDatabaseUnavailable(err)) {
    return [[inHand], items.filter((item) => item !== inHand)]
  }
  const half = Math.ceil(items.length / 2)
  return [items.slice(0, half), items.slice(half)]
}
