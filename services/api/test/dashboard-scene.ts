import { setTimeout as sleep } from 'node:timers/promises'
import {
  claimBatch,
  type Db,
  insertOrders,
  type Lease,
  leaseOrders,
  recordHeartbeat,
  registerWorker,
  settleBatch,
  settleLeasedOrders,
  sql,
} from '@postgres-queue/db'
import { makeOrder, settleNow } from '@postgres-queue/testkit'

// A queue in use, for the README's screenshot: three workers (two in transaction mode, one in
// lease mode) draining a wave of submissions, a week of history, a few dead letters. The workers
// are played with the db layer's own calls, so the page shows exactly what real ones would leave.

const policy = { baseMs: 1000, maxMs: 1000 }

const WORKERS = [
  { id: 'worker-1', host: 'ip-10-0-1-17', pid: 4121, mode: 'transaction', heartbeatMs: 5000 },
  { id: 'worker-2', host: 'ip-10-0-1-17', pid: 4133, mode: 'transaction', heartbeatMs: 5000 },
  { id: 'worker-3', host: 'ip-10-0-2-41', pid: 977, mode: 'lease', heartbeatMs: 5000 },
] as const

const DEAD_LETTERS = [
  'processor threw: card declined (issuer answered 05)',
  'timed out after 10000 ms',
  'stock service answered 503 Service Unavailable',
  'total 2999 does not match the items (2499)',
]

/** The past: completed orders (estimated on the page from statistics), 15 min of throughput, dead letters. */
export async function setTheScene(db: Db): Promise<void> {
  await db.execute(sql`insert into orders (customer_id, currency, items, total_cents, status, attempts, completed_at,
      completed_by)
    select 'c-' || i, 'EUR', '[{"sku":"SKU-1","quantity":1,"unitPriceCents":2500}]', 2500, 'completed', 1, now(),
      'worker-' || (1 + i % 3)
    from generate_series(1, 48210) i`)
  await db.execute(sql`analyze orders`)
  for (const worker of WORKERS) await registerWorker(db, worker)
  // A slow swell and ebb over the last 15 minutes, per worker per 5-second bucket.
  await db.execute(sql`insert into order_throughput (bucket, worker_id, completed, failed)
    select date_bin(interval '5 seconds', now() - n * interval '5 seconds', timestamptz '2000-01-01'), w,
      (45 + 20 * sin(n / 14.0) + 5 * sin(n * 1.7))::int, (n % 37 = 0)::int
    from generate_series(1, 180) n, unnest(array['worker-1', 'worker-2', 'worker-3']) w`)
  // Up for a while, one restarted since.
  await db.execute(sql`update workers set started_at = now() - case id when 'worker-3' then interval '47 minutes'
    else interval '6 hours 12 minutes' end`)
  for (const [i, error] of DEAD_LETTERS.entries()) {
    const [order] = await insertOrders(db, [makeOrder({ maxAttempts: 3, priority: 1000 })])
    await db.execute(sql`update orders set attempts = 2 where id = ${order!.id}`)
    await settleNow(db, { failed: [order!.id], error })
    // Failed over the last hour, the newest last.
    await db.execute(sql`update orders set updated_at = now() - ${(DEAD_LETTERS.length - i) * 13} * interval '1 minute'
      where id = ${order!.id}`)
  }
}

/**
 * The present: every second for `seconds`, a wave of submissions through the api, which the three
 * workers drain a little slower at first, then faster; the lease worker keeps a few in processing.
 */
export async function playTraffic(db: Db, apiUrl: string, seconds: number): Promise<void> {
  // Workers that have been up a while.
  const totals = new Map(WORKERS.map((w, i) => [w.id, { processed: 16_034 + 211 * i, failed: 3 - i }]))
  let held: Lease[] = []
  for (let tick = 0; tick < seconds; tick++) {
    const wave = Math.round(40 + 35 * Math.sin(tick / 6))
    await fetch(`${apiUrl}orders/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ orders: Array.from({ length: wave }, () => makeOrder()) }),
    })
    const drain = tick < seconds / 2 ? 14 : 30
    for (const worker of WORKERS.slice(0, 2)) {
      const { tx, orders } = await claimBatch(db, { limit: drain })
      await settleBatch(tx, { completed: orders.map((o) => o.id), failures: [], workerId: worker.id, policy })
      const done = orders.length
      await beat(db, worker.id, totals, done)
    }
    const lease = WORKERS[2]
    const { completed } = await settleLeasedOrders(db, { succeeded: held, failures: [], workerId: lease.id, policy })
    const leased = await leaseOrders(db, { limit: 12, workerId: lease.id, leaseMs: 30_000 })
    held = leased.map((l) => l.lease)
    await beat(db, lease.id, totals, completed.length)
    await sleep(1000)
  }
}

async function beat(db: Db, id: string, totals: Map<string, { processed: number; failed: number }>, done: number) {
  const total = totals.get(id)!
  total.processed += done
  await recordHeartbeat(db, {
    id,
    host: 'box',
    pid: 1,
    mode: 'transaction',
    heartbeatMs: 5000,
    ...total,
    completedSince: done,
    failedSince: 0,
  })
}
