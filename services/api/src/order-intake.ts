import {
  type Db,
  type Due,
  findIdempotencyKeys,
  type IdempotencyKey,
  insertSubmissions,
  isTransientDatabaseError,
  type NewOrder,
  notifyOrdersWaiting,
  type Order,
  type StoredKey,
  type Submission,
  type SubmissionResult,
  sqlState,
} from '@postgres-queue/db'
import type { Logger } from '@postgres-queue/runtime'
import { ApiError } from './errors.js'

export interface OrderIntakeOptions {
  /** The most single submissions coalesced into one insert. */
  maxBatch: number
  /** Inserts in flight at once; more requests queue behind them and go together in the next. */
  maxInFlight: number
  /** The most single submissions queued behind the inserts in flight; more are refused with a 503. */
  maxQueued: number
  /** The longest a submission waits in the queue; past it, it is refused with a 503 without being sent. */
  maxWaitMs: number
  log: Logger
}

/** What a submission came to: stored now, or the key was taken and this is what it stored. */
export type IntakeResult = { stored: true; ids: number[]; orders: Order[] } | { stored: false; key: StoredKey }

export interface OrderIntake {
  /** Stores one order: coalesced with concurrent submissions into one multi-row insert. */
  submit(order: NewOrder, idempotency?: IdempotencyKey): Promise<IntakeResult>
  /** Stores a batch as one insert, whole or not at all, and answers with ids. */
  submitBatch(orders: readonly NewOrder[], idempotency?: IdempotencyKey): Promise<IntakeResult>
  /** Wakes listening workers (coalesced with other wake-ups) for orders due now, or later: after a redrive, a cancel or a skip. */
  wakeWorkers(due?: Due): void
  /** Whether the queue is full: /ready says so, so a load balancer sends requests elsewhere. */
  saturated(): boolean
  /** Waits for queued submissions and wake-ups to settle. */
  flush(): Promise<void>
}

interface Pending {
  submission: Submission
  enqueuedAt: number
  resolve: (result: IntakeResult) => void
  reject: (err: unknown) => void
}

/**
 * Group commit for single submissions, the way a Kafka producer batches: a request that finds an
 * insert slot free is inserted at once (no added latency when idle); requests that arrive while
 * `maxInFlight` inserts run wait, and the next insert takes all of them (up to `maxBatch`) as one
 * statement and one commit. Under load, one fsync then covers dozens of orders instead of one,
 * and each request still gets its own order back.
 *
 * What each answer means, whatever the database does:
 * - resolved: stored exactly once (or the key's earlier request was).
 * - rejected: not stored, or (a connection lost mid-insert) unknown, which a client resolves by
 *   retrying with the same Idempotency-Key. A group is retried member by member only when the
 *   server refused its statement (which then stored nothing): never after an unknown outcome.
 * - The queue is bounded in length and in waiting time: a stalled database turns into prompt 503s,
 *   not a growing heap and requests that hang.
 *
 * After each commit the workers are woken with one coalesced NOTIFY, sent outside the insert; the
 * insert of a lone request on an idle intake notifies in its own transaction instead, a round trip
 * sooner.
 */
export function createOrderIntake(db: Db, options: OrderIntakeOptions): OrderIntake {
  const queue: Pending[] = []
  const running = new Set<Promise<void>>()
  const wake = createWakeup(db, options.log)

  function pump(): void {
    while (running.size < options.maxInFlight && queue.length > 0) {
      const group = takeGroup()
      if (group.length === 0) continue
      // A lone request on an idle intake: its insert notifies the workers in its own transaction, a
      // round trip sooner. Under load (a group, or inserts in flight; several api replicas) the
      // notifying commits would hold a cluster-wide lock through their WAL flushes and stop sharing
      // an fsync, so the coalesced NOTIFY after the commit stays.
      const insert = insertGroup(group, { notify: group.length === 1 && running.size === 0 }).finally(() => {
        running.delete(insert)
        pump()
      })
      running.add(insert)
    }
  }

  /** The next group, after refusing the submissions that waited too long. */
  function takeGroup(): Pending[] {
    expireWaiting()
    return queue.splice(0, options.maxBatch)
  }

  /** Refuses the submissions that waited past maxWaitMs: they were never sent, so nothing was stored. */
  function expireWaiting(): void {
    const oldest = performance.now() - options.maxWaitMs
    let kept = 0
    for (const p of queue) {
      if (p.enqueuedAt < oldest) p.reject(intakeTimeout(options.maxWaitMs))
      else queue[kept++] = p
    }
    queue.length = kept
  }

  // Refusals on time even while no insert ends to take the next group: one whose connection went
  // silent never ends (until the process does: the stall watch in main.ts).
  let expiry: NodeJS.Timeout | undefined
  function armExpiry(): void {
    if (expiry !== undefined || queue.length === 0) return
    const first = queue.reduce((at, p) => Math.min(at, p.enqueuedAt), Infinity)
    expiry = setTimeout(
      () => {
        expiry = undefined
        expireWaiting()
        armExpiry()
      },
      Math.max(0, first + options.maxWaitMs - performance.now()),
    )
    expiry.unref()
  }

  async function insertGroup(group: Pending[], { notify }: { notify: boolean }): Promise<void> {
    let results: SubmissionResult[]
    try {
      results = await insertSubmissions(
        db,
        group.map((p) => p.submission),
        { returnRows: true, notify },
      )
    } catch (err) {
      if (group.length > 1 && refusedByServer(err)) {
        // The server refused the statement, so nothing of it was stored: one order it refused must
        // not fail the others it was grouped with. Retry each alone.
        await Promise.all(group.map((p) => insertGroup([p], { notify: false })))
        return
      }
      for (const p of group) p.reject(err)
      // The database is away or stalled: what waits behind would meet the same; answer it now.
      if (isTransientDatabaseError(err)) for (const p of queue.splice(0)) p.reject(err)
      return
    }
    const taken: Pending[] = []
    results.forEach((result, i) => {
      const p = group[i] as Pending
      if (result.stored) p.resolve(result)
      else taken.push(p)
    })
    // The insert announced those due now itself; one due later is announced with its time here.
    for (const result of results) if (result.stored) wake({ ...result.due, now: result.due.now && !notify })
    if (taken.length > 0) await resolveTaken(taken)
  }

  /** Members whose key was taken: answered with what the key stored, read in a statement of its own. */
  async function resolveTaken(taken: Pending[]): Promise<void> {
    const keys = taken.map((p) => p.submission.idempotency?.key ?? '')
    let stored: Map<string, StoredKey>
    try {
      stored = await findIdempotencyKeys(db, keys)
    } catch (err) {
      // Nothing of theirs was stored: a retry with the same key is safe.
      for (const p of taken) p.reject(err)
      return
    }
    for (const p of taken) {
      const key = stored.get(p.submission.idempotency?.key ?? '')
      // Gone already (forgotten past its window between the two statements): store it afresh.
      if (key === undefined) enqueue(p)
      else p.resolve({ stored: false, key })
    }
  }

  function enqueue(p: Pending): void {
    queue.push(p)
    pump()
    armExpiry()
  }

  return {
    submit(order, idempotency) {
      if (queue.length >= options.maxQueued) return Promise.reject(intakeSaturated())
      return new Promise((resolve, reject) => {
        const submission = idempotency === undefined ? { orders: [order] } : { orders: [order], idempotency }
        enqueue({ submission, enqueuedAt: performance.now(), resolve, reject })
      })
    },

    async submitBatch(orders, idempotency) {
      const submission = idempotency === undefined ? { orders } : { orders, idempotency }
      const [result] = await insertSubmissions(db, [submission], { returnRows: false })
      if (result?.stored) {
        wake(result.due)
        return result
      }
      const key = (await findIdempotencyKeys(db, [idempotency?.key ?? ''])).get(idempotency?.key ?? '')
      if (key === undefined) throw new Error('the Idempotency-Key was taken, then forgotten; retry')
      return { stored: false, key }
    },

    wakeWorkers: (due = { now: true }) => wake(due),

    saturated: () => queue.length >= options.maxQueued,

    async flush() {
      while (running.size > 0) await Promise.allSettled([...running])
      await wake.settled()
    },
  }
}

/** A statement the server refused (an error it reported, other than a transient one): nothing was stored. */
function refusedByServer(err: unknown): boolean {
  return sqlState(err) !== undefined && !isTransientDatabaseError(err)
}

function intakeSaturated(): ApiError {
  return new ApiError(
    503,
    'INTAKE_SATURATED',
    'Too many orders are waiting to be stored; nothing was stored, retry later',
  )
}

function intakeTimeout(ms: number): ApiError {
  return new ApiError(
    503,
    'INTAKE_TIMEOUT',
    `The order waited ${ms} ms for the database and was not sent; nothing was stored, retry later`,
  )
}

/**
 * A coalescing NOTIFY: at most one in flight, and one more after it if commits happened meanwhile,
 * so every commit is followed by a notification sent after it, and a burst costs two at most. What
 * it says: orders are due now, or when the earliest of those due later comes due (a time on the
 * database's clock, as the insert gave it).
 */
function createWakeup(db: Db, log: Logger): ((due: Due) => void) & { settled(): Promise<void> } {
  let inFlight: Promise<void> | undefined
  let waiting: Due | undefined
  const send = async (): Promise<void> => {
    while (waiting) {
      const { now, earliestLater } = waiting
      waiting = undefined
      try {
        if (now) await notifyOrdersWaiting(db)
        if (earliestLater !== undefined) await notifyOrdersWaiting(db, { dueAt: earliestLater })
      } catch (err) {
        // Workers poll on their schedule too: a lost wake-up delays pickup, it loses nothing.
        log.warn({ err }, 'could not wake the workers')
      }
    }
  }
  const kick = () => {
    if (inFlight || !waiting) return
    inFlight = send().finally(() => {
      inFlight = undefined
      kick() // a wake-up that came between the last check and here
    })
  }
  const wake = (due: Due) => {
    if (!due.now && due.earliestLater === undefined) return
    const earlier = [due.earliestLater, waiting?.earliestLater].filter((t) => t !== undefined).sort((a, b) => +a - +b)
    waiting = { now: due.now || (waiting?.now ?? false), ...(earlier[0] ? { earliestLater: earlier[0] } : {}) }
    kick()
  }
  return Object.assign(wake, { settled: async () => void (await inFlight) })
}
