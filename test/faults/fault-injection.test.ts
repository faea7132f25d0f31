import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { closeDb, createDb, type Db, insertOrders, migrateDatabase, sql } from '@postgres-queue/db'
import { freePort, startCluster } from '@postgres-queue/devkit'
import { createEffectsTable, makeOrder, startPrivateCluster, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { faultFor } from '../fixtures/faults.js'
import { entryPoints, isRunning, type ServiceProcess, startService, stopService } from '../support/processes.js'

// The standing proof of the guarantees: real worker processes in both modes and the real api,
// against a real PostgreSQL, with a processor that misbehaves at random (test/fixtures/faults.ts:
// throws anything, hangs, blocks the event loop past its session's idle bound, returns CommitWork
// that is slow, throws, conflicts or ends its own session), while this harness
// SIGKILLs and SIGSTOPs workers, restarts PostgreSQL and holds table locks. Then, every run:
//
// - every order reaches a final state within a bound, once the faults stop;
// - each completed order has exactly one CommitWork effect row, written by its completer, and no
//   other order has one;
// - attempts never exceed maxAttempts;
// - an attempt's outside call is made more than once, or a lease lapses, only where a worker
//   really died or was paused, or the database was restarted or locked meanwhile (counted);
// - every submission the api acknowledged is stored exactly once;
// - no process that was not killed exits, and each stops cleanly at the end;
// - a lease worker's heap stays flat;
// - the orders of one orderingKey (a third of them, over KEYS keys) start in id order, each after
//   the one before it completed or, dead-lettered, was skipped (the harness skips such heads over
//   HTTP once the faults stop, as an operator would).
//
// FAULT_SEED replays a run (a failure prints its seed); FAULT_SECONDS sets how long faults are
// injected (default 30; longer runs: FAULT_SECONDS=600 pnpm exec tap test/faults/fault-injection.test.ts);
// FAULT_DEBUG=<file> writes the events, what was unexplained and every process's log lines there.

const SEED = Number(process.env.FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31))
/** The harness's own choices (which fault, when, how long) come from the seed too. */
const randomInt = seededRandomInt(SEED)
const FAULT_SECONDS = Number(process.env.FAULT_SECONDS ?? 30)
const PRELOADED = 1500
/** A third of the orders, preloaded and submitted, carry one of this many orderingKeys. */
const KEYS = 20
const MAX_ATTEMPTS = 6
const ORDER_TIMEOUT_MS = 400
const LEASE_MS = 1500
/** How long after a fault its effects may still show. */
const AFTERMATH_MS = 2000
/** Once the faults stop, every order must be final within this. */
const SETTLE_MS = 90_000
/**
 * Once the faults stop, a submission still being resent must be acknowledged within this: the api
 * and the database are back, so a longer wait is a fault of its own, not the test's timing.
 */
const LAST_SUBMISSION_MS = 60_000
/** Past SETTLE_MS, a settle check (a query, a skip request) still not returned is a hang. */
const SETTLE_HANG_MS = 30_000
/**
 * Longer than a batch may keep its transaction idle (its 2 s budget), shorter than the server's own
 * bound (idle_in_transaction_session_timeout, the order timeout + 5 s), so a stuck worker shows.
 */
const STUCK_MS = 3000
/** A lease worker's heap may grow this much between its early and late samples. */
const HEAP_GROWTH_BYTES = 16 * 1024 * 1024

const faultWorker = fileURLToPath(new URL('../fixtures/dist/fault-worker.js', import.meta.url))

type Event = {
  kind: 'kill' | 'pause' | 'block' | 'session ended' | 'restart' | 'lock'
  target?: string
  at: number
  until: number
}

// Start-up (60 s), the faults, the last submissions, the settle, and the checks: each bounded.
t.setTimeout((FAULT_SECONDS + 120) * 1000 + LAST_SUBMISSION_MS + SETTLE_MS + SETTLE_HANG_MS)

t.test(`faults at random for ${FAULT_SECONDS} s, both modes: the guarantees hold (seed ${SEED})`, async (t) => {
  t.comment(`FAULT_SEED=${SEED} FAULT_SECONDS=${FAULT_SECONDS} replays this run`)
  const cluster = await startPrivateCluster(t)
  const url = cluster.url()
  await migrateDatabase(url)
  const db = createDb(url, { maxConnections: 3, maxReconnectDelaySeconds: 0.2 })
  t.teardown(() => closeDb(db, 1))
  await createEffectsTable(db)
  await db.execute(sql`create table outside_calls (order_id bigint not null, attempt int not null,
    worker_id text not null, at timestamptz not null default clock_timestamp())`)
  await db.execute(sql`create table hot_rows (id int primary key, n int not null default 0)`)
  await db.execute(sql`insert into hot_rows (id) values (0), (1), (2)`)
  await preload(db)

  const started: ServiceProcess[] = []
  t.teardown(() => Promise.all(started.map((p) => stopService(p, 10_000))))
  const killed = new Set<ServiceProcess>()
  const events: Event[] = []
  const now = () => Date.now()

  const port = await freePort()
  const api = startService('api', [entryPoints.api], {
    DATABASE_URL: url,
    PORT: String(port),
    LOG_LEVEL: 'warn',
    DATABASE_STATEMENT_TIMEOUT_MS: '2000',
  })
  started.push(api)
  let generation = 0
  const startWorker = (mode: 'transaction' | 'lease', slot: number) => {
    generation += 1
    const worker = startService(`${mode}-${slot}-${generation}`, ['--expose-gc', faultWorker], {
      DATABASE_URL: url,
      WORKER_ID: `${mode}-${slot}-${generation}`,
      WORKER_MODE: mode,
      WORKER_CRON: '* * * * * *',
      WORKER_JITTER_MS: '100',
      WORKER_BATCH_SIZE: '10',
      WORKER_CONCURRENCY: '4',
      WORKER_LEASE_MS: String(LEASE_MS),
      WORKER_ORDER_TIMEOUT_MS: String(ORDER_TIMEOUT_MS),
      WORKER_BATCH_TIMEOUT_MS: '2000',
      WORKER_RETRY_BASE_MS: '50',
      WORKER_RETRY_MAX_MS: '500',
      WORKER_SHUTDOWN_TIMEOUT_MS: '3000',
      WORKER_HEARTBEAT_MS: '1000',
      LOG_LEVEL: 'info',
      FAULT_SEED: String(SEED),
      HEAP_SAMPLE_MS: mode === 'lease' ? '5000' : '0',
    })
    started.push(worker)
    return worker
  }
  const slots = [
    ['transaction', 1],
    ['transaction', 2],
    ['lease', 1],
    ['lease', 2],
  ] as const
  const fleet = slots.map(([mode, slot]) => startWorker(mode, slot))
  await Promise.all(fleet.map((w) => w.waitForLine((l) => l.msg === 'worker started', 60_000)))

  // Clients submitting over HTTP all along, each with an Idempotency-Key, resending on any error.
  const base = `http://127.0.0.1:${port}`
  const acknowledged = new Map<string, number>()
  let submitting = true
  let stoppedSubmittingAt = Infinity
  let submission = 0
  const submitters = Array.from({ length: 2 }, async (_, client) => {
    while (submitting) {
      const key = `c${client}-${++submission}`
      const body = makeOrder({ maxAttempts: MAX_ATTEMPTS, ...keyed(submission) })
      for (;;) {
        const id = await submit(base, key, body)
        if (id !== undefined) {
          acknowledged.set(key, id)
          break
        }
        if (now() - stoppedSubmittingAt > LAST_SUBMISSION_MS)
          throw new Error(`seed ${SEED}: ${key} not acknowledged ${LAST_SUBMISSION_MS} ms after the faults stopped`)
        await sleep(200)
      }
      await sleep(100)
    }
  })

  // Worker sessions idle inside a transaction for long: only a paused worker may leave one so (a
  // worker waiting on itself, say for a free connection, would show here before its leases lapse).
  const stuck: { at: number; worker: string; idleMs: number; query: string }[] = []
  let sampling = true
  // Also when a step before the sampler's own end fails: a sampling loop would keep the process up.
  t.teardown(() => {
    sampling = false
  })
  const sampler = (async () => {
    const probe = createDb(url, { maxConnections: 1, maxReconnectDelaySeconds: 0.2 })
    while (sampling) {
      await sleep(500)
      const rows = await probe
        .execute<{ worker: string; idle_ms: number; query: string }>(sql`
          select substr(application_name, 23) as worker, extract(epoch from now() - state_change) * 1000 as idle_ms,
                 left(query, 80) as query
          from pg_stat_activity
          where application_name like 'postgres-queue worker %' and state like 'idle in transaction%'
            and now() - state_change > ${STUCK_MS} * interval '1 millisecond'`)
        .catch(() => [])
      for (const row of rows)
        stuck.push({ at: now(), worker: row.worker, idleMs: Number(row.idle_ms), query: row.query })
    }
    await closeDb(probe, 1)
  })()
  // The faults.
  const faultsUntil = now() + FAULT_SECONDS * 1000
  const locker = createDb(url, { maxConnections: 1, maxReconnectDelaySeconds: 0.2 })
  t.teardown(() => closeDb(locker, 1))
  while (now() < faultsUntil) {
    await sleep(randomInt(300, 1500))
    const roll = randomInt(100)
    if (roll < 35) {
      const slot = randomInt(fleet.length)
      const victim = fleet[slot] as ServiceProcess
      if (!isRunning(victim) || !victim.lines.some((l) => l.msg === 'worker started')) continue
      victim.child.kill('SIGKILL')
      killed.add(victim)
      events.push({ kind: 'kill', target: victim.name, at: now(), until: now() })
      await victim.exited
      const [mode, n] = slots[slot] as (typeof slots)[number]
      fleet[slot] = startWorker(mode, n)
    } else if (roll < 60) {
      const victim = fleet[randomInt(fleet.length)] as ServiceProcess
      if (!isRunning(victim)) continue
      const at = now()
      victim.child.kill('SIGSTOP')
      await sleep(randomInt(LEASE_MS + 500, 2 * LEASE_MS + 1000))
      victim.child.kill('SIGCONT')
      events.push({ kind: 'pause', target: victim.name, at, until: now() })
    } else if (roll < 80) {
      const at = now()
      await cluster.stop()
      await sleep(randomInt(200, 2000))
      await startCluster({ dataDir: cluster.dataDir, port: cluster.port })
      events.push({ kind: 'restart', at, until: now() })
    } else {
      const at = now()
      await locker
        .transaction(async (tx) => {
          await tx.execute(sql`lock table orders in access exclusive mode`)
          await sleep(randomInt(500, 2500))
        })
        .catch(() => {}) // the server may be restarting
      events.push({ kind: 'lock', at, until: now() })
    }
  }
  t.comment(`faults: ${JSON.stringify(countBy(events.map((e) => e.kind)))}`)

  // Settle: submissions stop, every order must become final.
  submitting = false
  stoppedSubmittingAt = now()
  await Promise.all(submitters)
  const settleStarted = now()
  const progress: string[] = []
  let skipped = 0
  const settled = waitFor(
    async () => {
      progress.push(`${Math.round((now() - settleStarted) / 1000)}s:`)
      skipped += await skipDeadHeads(db, base)
      const left = await unfinished(db)
      progress.push(`${progress.pop()}${left}`)
      return left === 0
    },
    {
      message: 'every order final after the faults stopped',
      timeoutMs: SETTLE_MS,
      intervalMs: 1000,
    },
  ).catch(async (err: unknown) => {
    throw new Error(`seed ${SEED}: ${await unfinished(db)} orders not final ${SETTLE_MS} ms after the faults stopped`, {
      cause: err,
    })
  })
  // waitFor cannot end a check that never returns: name the hang rather than run into tap's timeout.
  const settleBound = new AbortController()
  const hung = sleep(SETTLE_MS + SETTLE_HANG_MS, undefined, { signal: settleBound.signal }).then(
    () => {
      throw new Error(`seed ${SEED}: a settle check did not return (checks so far: ${progress.join(' ')})`)
    },
    () => {}, // the settle ended first
  )
  await Promise.race([settled, hung]).finally(() => settleBound.abort())
  t.comment(`all orders final ${now() - settleStarted} ms after the faults stopped (left: ${progress.join(' ')})`)
  t.comment(`dead letters skipped to let their keys go on: ${skipped}`)

  // Per key, from the outside calls (each attempt's first act): every order started after the one
  // before it in its key had completed or been skipped, so also in id order.
  const [lines] = await db.execute<{ keyed: number; early: number; examples: unknown }>(sql`
    with starts as (
      select o.id, o.ordering_key, min(c.at) as started, coalesce(o.completed_at, o.skipped_at) as released
      from orders o join outside_calls c on c.order_id = o.id
      where o.ordering_key is not null group by o.id),
    lined as (
      select *, lag(released) over (partition by ordering_key order by id) as previous_released,
        lag(id) over (partition by ordering_key order by id) as previous
      from starts)
    select count(*)::int as keyed, count(*) filter (where started < previous_released or (previous is not null and previous_released is null))::int as early,
      (json_agg(json_build_object('id', id, 'previous', previous)) filter (where started < previous_released or (previous is not null and previous_released is null)))
        as examples
    from lined`)
  t.ok((lines?.keyed ?? 0) > PRELOADED / 5, `keyed orders that ran: ${lines?.keyed}`)
  t.same(
    [lines?.early, lines?.examples],
    [0, null],
    `seed ${SEED}: each key's orders started one after another, in id order`,
  )

  const [totals] = await db.execute<{ completed: number; failed: number; over: number; total: number }>(sql`
    select count(*) filter (where status = 'completed')::int as completed,
           count(*) filter (where status = 'failed')::int as failed,
           count(*) filter (where attempts > max_attempts)::int as over,
           count(*)::int as total
    from orders`)
  t.comment(`seed ${SEED}: ${JSON.stringify(totals)}; ${acknowledged.size} submissions acknowledged over HTTP`)
  t.equal(totals?.over, 0, `seed ${SEED}: attempts never exceed maxAttempts`)

  const [effects] = await db.execute<{ missing: number; doubled: number; foreign: number; stray: number }>(sql`
    with counts as (select order_id, count(*) as n, bool_or(e.worker_id is distinct from o.completed_by) as by_other
                    from order_effects e left join orders o on o.id = e.order_id group by order_id)
    select (select count(*) from orders o where status = 'completed'
              and not exists (select 1 from order_effects e where e.order_id = o.id))::int as missing,
           (select count(*) from counts where n > 1)::int as doubled,
           (select count(*) from counts where by_other)::int as foreign,
           (select count(*) from counts c join orders o on o.id = c.order_id where o.status <> 'completed')::int as stray`)
  t.same(
    effects,
    { missing: 0, doubled: 0, foreign: 0, stray: 0 },
    `seed ${SEED}: one effect row per completed order, by its completer, none for others`,
  )

  // Acknowledged submissions: each stored exactly once, under its key.
  const [stored] = await db.execute<{ keys: number; orders: number }>(sql`
    select (select count(*) from idempotency_keys where key = any(${sql.param([...acknowledged.keys()])}::text[]))::int as keys,
           (select count(*) from orders)::int - ${PRELOADED} as orders`)
  t.equal(stored?.keys, acknowledged.size, `seed ${SEED}: every acknowledged key is stored`)
  t.equal(stored?.orders, acknowledged.size, `seed ${SEED}: and no submission was stored twice`)
  const ackedIds = [...acknowledged.values()]
  t.equal(new Set(ackedIds).size, ackedIds.length, 'each acknowledgement names its own order')

  // A processor that blocked its worker's event loop (faults.ts, blockLoop) paused that worker as
  // surely as a SIGSTOP: its leases lapse, its session ends under its batch.
  for (const worker of started) {
    for (const line of worker.lines.filter((l) => l.msg === 'blocking the event loop')) {
      const at = line.time as number
      events.push({ kind: 'block', target: worker.name, at, until: at + (line.ms as number) })
    }
  }
  // CommitWork that ended its own session (commitEndsSession) took its transaction with it, until
  // the worker isolated it: a transaction-mode batch is run again, split, and its orders' outside
  // calls with it; a lease worker's completions are split and its connections renewed meanwhile.
  const calls = await db.execute<{ order_id: string; attempt: number; worker_id: string; at: string }>(
    sql`select order_id, attempt, worker_id, at::text from outside_calls`,
  )
  const isolations = new Set([
    'completing the order breaks its transaction',
    'order breaks its batch; will retry',
    'order breaks its batch; dead-lettered',
  ])
  for (const call of calls) {
    const orderId = Number(call.order_id)
    if (faultFor(SEED, orderId, call.attempt) !== 'commitEndsSession') continue
    const at = Date.parse(call.at)
    const isolated = started
      .find((w) => w.name === call.worker_id)
      ?.lines.find((l) => isolations.has(String(l.msg)) && l.orderId === orderId && Date.parse(l.time as string) >= at)
    const until = isolated ? Date.parse(isolated.time as string) : at + ORDER_TIMEOUT_MS
    events.push({ kind: 'session ended', target: call.worker_id, at, until })
  }
  t.comment(
    `event loops blocked: ${events.filter((e) => e.kind === 'block').length}; sessions ended by their own CommitWork: ${events.filter((e) => e.kind === 'session ended').length}`,
  )

  // Outside calls made twice for one attempt, and leases that lapsed: each must be explained.
  const duplicates = await db.execute<{ order_id: string; attempt: number; workers: string[]; ats: string[] }>(sql`
    select order_id, attempt, array_agg(worker_id order by at) as workers, array_agg(at::text order by at) as ats
    from outside_calls group by order_id, attempt having count(*) > 1`)
  const rescued = started.flatMap((w) =>
    w.lines
      .filter((l) => l.msg === 'leases lapsed; the orders are pending again')
      .flatMap((l) =>
        (l.orders as number[]).map((id) => ({ id, heldBy: l.heldBy as string, at: Date.parse(l.time as string) })),
      ),
  )
  // A restart's or a lock's effects outlast it a little (pools find their dead connections on
  // use); a pause's concern the worker that held the order. A kill's have no end: worker ids are
  // per process, so a killed holder's leases lapse whenever the promoter next looks, which on a
  // loaded machine can be seconds later.
  const explained = (holder: string | undefined, from: number, to: number) =>
    events.find((e) => {
      if (e.kind === 'restart' || e.kind === 'lock') return e.until + AFTERMATH_MS >= from && e.at <= to
      if (e.kind === 'kill') return e.at <= to && e.target === holder
      return e.until + AFTERMATH_MS >= from && e.at <= to && e.target === holder
    })?.kind
  const causes: string[] = []
  const unexplained: unknown[] = []
  for (const d of duplicates) {
    const cause = explained(d.workers[0], Date.parse(d.ats[0] as string), Date.parse(d.ats.at(-1) as string))
    if (cause) causes.push(`rerun after ${cause}`)
    else unexplained.push({ order: d.order_id, attempt: d.attempt, workers: d.workers, ats: d.ats })
  }
  for (const r of rescued) {
    const cause = explained(r.heldBy, r.at - LEASE_MS, r.at)
    if (cause) causes.push(`lease lapsed after ${cause}`)
    else unexplained.push({ rescued: r.id, at: new Date(r.at).toISOString(), heldBy: r.heldBy })
  }
  const [callTotals] = await db.execute<{ calls: number; orders: number }>(
    sql`select count(*)::int as calls, count(distinct order_id)::int as orders from outside_calls`,
  )
  t.comment(
    `outside calls: ${callTotals?.calls} for ${callTotals?.orders} orders; explained repeats: ${JSON.stringify(countBy(causes))}`,
  )
  sampling = false
  await sampler
  const stuckUnexplained = stuck.filter(
    (s) =>
      !events.some(
        (e) =>
          (e.kind === 'pause' || e.kind === 'block') &&
          e.target === s.worker &&
          e.at <= s.at &&
          e.until + 1000 >= s.at - s.idleMs,
      ),
  )
  t.same(stuckUnexplained, [], `seed ${SEED}: no running worker left a transaction idle for ${STUCK_MS} ms`)
  if (process.env.FAULT_DEBUG) {
    const { writeFileSync } = await import('node:fs')
    writeFileSync(
      process.env.FAULT_DEBUG,
      JSON.stringify({ events, unexplained, stuck, logs: Object.fromEntries(started.map((w) => [w.name, w.lines])) }),
    )
  }
  t.same(
    unexplained,
    [],
    `seed ${SEED}: no outside call repeated, no lease lost, without a worker dying, pausing or the database going away`,
  )

  // No process exited that was not killed.
  const exited = started.filter((p) => !isRunning(p) && !killed.has(p))
  t.same(
    exited.map((p) => ({ name: p.name, code: p.child.exitCode, last: lastErrors(p) })),
    [],
    `seed ${SEED}: no process exited unless killed`,
  )

  // Heap of the lease workers that ran the longest.
  for (const worker of started.filter((w) => w.name.startsWith('lease') && isRunning(w))) {
    const heap = worker.lines.filter((l) => l.msg === 'heap').map((l) => l.heapUsed as number)
    if (heap.length < 4) continue
    const growth = (heap.at(-1) as number) - Math.min(...heap.slice(0, 2))
    t.ok(
      growth < HEAP_GROWTH_BYTES,
      `${worker.name}: heap ${mb(heap[0])} -> ${mb(heap.at(-1))} MB over ${heap.length} samples`,
    )
  }

  // A replacement still loading its modules has no SIGTERM handler yet.
  await Promise.all(
    fleet.filter(isRunning).map((w) => w.waitForLine((l) => l.msg === 'worker started', 60_000).catch(() => undefined)),
  )
  const survivors = started.filter(isRunning)
  t.same(
    await Promise.all(survivors.map((p) => stopService(p, 20_000))),
    survivors.map(() => 0),
    `seed ${SEED}: every process still up stops cleanly`,
  )
})

/** PRELOADED orders: mixed priorities, a fifth of them due a few seconds later, a third keyed. */
async function preload(db: Db): Promise<void> {
  const orders = Array.from({ length: PRELOADED }, (_, i) =>
    makeOrder({
      ...keyed(i),
      maxAttempts: MAX_ATTEMPTS,
      priority: randomInt(-2, 3),
      ...(i % 5 === 0 ? { runAt: new Date(Date.now() + randomInt(1000, 8000)) } : {}),
    }),
  )
  for (let i = 0; i < orders.length; i += 500) await insertOrders(db, orders.slice(i, i + 500))
}

async function submit(base: string, key: string, body: unknown): Promise<number | undefined> {
  try {
    const response = await fetch(`${base}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    })
    const json = (await response.json()) as { id?: number }
    return response.status === 201 || response.status === 200 ? json.id : undefined
  } catch {
    return undefined
  }
}

/** Every third order carries one of KEYS orderingKeys. */
function keyed(n: number): { orderingKey?: string } {
  return n % 3 === 0 ? { orderingKey: `key-${(n / 3) % KEYS}` } : {}
}

/** Skips, over HTTP, each dead letter that holds orders of its key back; returns how many. */
async function skipDeadHeads(db: Db, base: string): Promise<number> {
  const heads = await db
    .execute<{ id: string }>(sql`
      select id from orders as head where status = 'failed' and skipped_at is null and exists (
        select from orders as next where next.ordering_key = head.ordering_key and next.status = 'waiting')`)
    .catch(() => [])
  let skipped = 0
  for (const { id } of heads) {
    const response = await fetch(`${base}/orders/${id}/skip`, {
      method: 'POST',
      signal: AbortSignal.timeout(5000),
    }).catch(() => undefined)
    if (response?.status === 200) skipped += 1
  }
  return skipped
}

async function unfinished(db: Db): Promise<number> {
  const [row] = await db
    .execute<{ n: number }>(
      sql`select count(*)::int as n from orders where status in ('scheduled', 'waiting', 'pending', 'processing')`,
    )
    .catch(() => [{ n: -1 }])
  return row?.n ?? -1
}

function lastErrors(service: ServiceProcess): string[] {
  return service.lines
    .filter((l) => (l.level as number) >= 50)
    .slice(-3)
    .map((l) => `${String(l.msg)}: ${JSON.stringify(l.err ?? '').slice(0, 500)}`)
    .concat(service.otherOutput.slice(-3))
}

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1
  return counts
}

const mb = (bytes: number | undefined) => ((bytes ?? 0) / 2 ** 20).toFixed(1)

/** A seeded integer in [min, max) (one argument: [0, max)), from mulberry32. */
function seededRandomInt(seed: number): (min: number, max?: number) => number {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
  }
  return (min, max) => (max === undefined ? Math.floor(next() * min) : min + Math.floor(next() * (max - min)))
}
