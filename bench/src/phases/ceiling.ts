import { claimableText, type Db, DEFAULT_SCHEMA, lockOrderingKeys } from '@postgres-queue/db'
import postgres from 'postgres'
import { nowMs } from '../clock.js'
import type { BenchContext } from '../context.js'
import { orderColumns } from '../ours/columns.js'
import { BENCH_ORDER, createOurDatabase, dropOurDatabase, preloadOrders } from '../ours/orders.js'
import type { CeilingResult, ExactlyOnce } from '../results.js'
import { DEFAULT_BATCH_SIZE } from '../settings.js'
import { perSecond } from '../stats.js'
import { describeCeiling } from './describe.js'
import { MANY_KEYS } from './keys.js'

const CLAIM_CLIENTS = 4
const INSERT_CLIENTS = 8
const ITEMS = BENCH_ORDER.items.map((item) => ({ ...item }))

/**
 * What PostgreSQL itself does for the same patterns, on our schema, with nothing in between: plain
 * statements from postgres.js (prepared, one round trip each), no per-row work in the client. Each
 * statement is the minimal form of the product's: the same predicates, ordering and index, but the
 * claim returns ids only.
 */
export async function runCeilingPhase(ctx: BenchContext): Promise<CeilingResult[]> {
  const results: CeilingResult[] = []
  const record = (result: CeilingResult) => {
    results.push(result)
    ctx.log(describeCeiling(result))
  }
  record(
    await drainCeiling(
      ctx,
      'claim-complete-1tx',
      `claim+complete ${DEFAULT_BATCH_SIZE} rows in one tx (FOR UPDATE SKIP LOCKED), ${CLAIM_CLIENTS} clients`,
      claimCompleteInOneTransaction,
    ),
  )
  record(
    await drainCeiling(
      ctx,
      'claim-complete-keyed-1tx',
      `the same over ${MANY_KEYS.toLocaleString('en')} orderingKeys: lock the batch's keys, complete, promote each key's next order, one tx, ${CLAIM_CLIENTS} clients`,
      claimCompleteKeyedInOneTransaction,
      { keys: MANY_KEYS },
    ),
  )
  record(
    await drainCeiling(
      ctx,
      'lease-2tx',
      `lease: claim ${DEFAULT_BATCH_SIZE} rows (UPDATE ... FROM SKIP LOCKED), complete in a 2nd tx, ${CLAIM_CLIENTS} clients`,
      claimThenCompleteInTwoTransactions,
    ),
  )
  record(
    await drainCeiling(
      ctx,
      'lease-delete-2tx',
      `lease as above, complete by DELETE (graphile-worker's shape: the finished row leaves the table), ${CLAIM_CLIENTS} clients`,
      leaseThenDelete,
      { deletes: true },
    ),
  )
  record(
    await drainCeiling(
      ctx,
      'hot-lease-2tx',
      `HOT lease: status stays pending, expiry in an unindexed column (fillfactor ${HOT_LEASE_FILLFACTOR}), claim ${DEFAULT_BATCH_SIZE} rows stepping over held leases, complete in a 2nd tx, ${CLAIM_CLIENTS} clients`,
      hotLeaseThenComplete,
      { prepare: prepareHotLease },
    ),
  )
  record(
    await drainCeiling(
      ctx,
      'narrow-lease-2tx',
      `narrow lease: a row in a lease table of its own, orders untouched until completion, claim ${DEFAULT_BATCH_SIZE} rows stepping over held leases, complete and drop the lease in a 2nd tx, ${CLAIM_CLIENTS} clients`,
      narrowLeaseThenComplete,
      { prepare: prepareNarrowLease },
    ),
  )
  record(await insertCeiling(ctx, 'insert', `insert 1 row/tx, ${INSERT_CLIENTS} clients`, insertOne))
  record(
    await insertCeiling(
      ctx,
      'insert-notify',
      `insert 1 row/tx with pg_notify in the tx, ${INSERT_CLIENTS} clients`,
      insertOneAndNotify,
    ),
  )
  return results
}

/** One turn of a client's loop: rows done (0: nothing left). `db` compiles the product's own statements. */
type Step = (sql: postgres.Sql, client: string, db: Db) => Promise<number>

/** The product's own claim predicate and order (claims.ts), so a ceiling walks the same index. */
const claimable = (sql: postgres.Sql) => sql.unsafe(`${claimableText.where} order by ${claimableText.orderBy}`)

/** (a) Transaction mode's pattern: lock a batch, complete it, commit once. */
const claimCompleteInOneTransaction: Step = (sql, client) =>
  sql.begin(async (tx) => {
    const rows = await tx<{ id: string }[]>`
      select id from orders
      where ${claimable(sql)}
      limit ${DEFAULT_BATCH_SIZE}
      for update skip locked`
    if (rows.length === 0) return 0
    await tx`
      update orders set status = 'completed', attempts = attempts + 1, completed_at = statement_timestamp(),
                        completed_by = ${client}, updated_at = statement_timestamp()
      where id = any(${tx.array(rows.map((r) => r.id))}::bigint[]) and status = 'pending'`
    return rows.length
  }) as Promise<number>

/**
 * (a) over ordering keys, as a keyed settlement does (claims.ts, ordering-keys.ts): the completed
 * orders' keys locked first (the product's own lockOrderingKeys), then the completion and the
 * promotion of each key's next waiting order in one statement. What a keyed order costs PostgreSQL
 * beyond an unkeyed one: a row lock, and a second update of a wide row (the promotion), which
 * inserts into every index a due head is in.
 */
const claimCompleteKeyedInOneTransaction: Step = (sql, client, db) =>
  sql.begin(async (tx) => {
    const rows = await tx<{ id: string; ordering_key: string }[]>`
      select id, ordering_key from orders
      where ${claimable(sql)}
      limit ${DEFAULT_BATCH_SIZE}
      for update skip locked`
    if (rows.length === 0) return 0
    const lock = lockOrderingKeys.bind(db, { keys: rows.map((r) => r.ordering_key) })
    await tx.unsafe(lock.sql, lock.params as never[], { prepare: true })
    await tx`
      with completed as (
        update orders set status = 'completed', attempts = attempts + 1, completed_at = statement_timestamp(),
                          completed_by = ${client}, updated_at = statement_timestamp()
        where id = any(${tx.array(rows.map((r) => r.id))}::bigint[]) and status = 'pending'
        returning ordering_key
      )
      update orders set status = 'pending', run_at = statement_timestamp(), updated_at = statement_timestamp()
      where id in (
        select (select next.id from orders as next
                where next.ordering_key = completed.ordering_key and next.status = 'waiting'
                order by next.id limit 1)
        from completed)`
    return rows.length
  }) as Promise<number>

/**
 * (b) Lease mode's pattern, as leases.ts writes it: one committed statement takes the lease
 * (processing, a new fencing token, expiry in run_at, attempts + 1), a second completes what is
 * still held under that token.
 */
const claimThenCompleteInTwoTransactions: Step = async (sql, client) => {
  const rows = await leaseBatch(sql, client)
  if (rows.length === 0) return 0
  await sql`
    update orders set status = 'completed', completed_at = statement_timestamp(), completed_by = ${client},
                      locked_by = null, updated_at = statement_timestamp()
    from unnest(${sql.array(rows.map((r) => r.id))}::bigint[], ${sql.array(rows.map((r) => r.lease_token))}::int[]) as lease(id, token)
    where orders.id = lease.id and orders.lease_token = lease.token and orders.status = 'processing'`
  return rows.length
}

/**
 * Lease mode's lease, then graphile-worker's completion: a DELETE, which writes no new row version
 * and no index entry, where ours keeps the completed order (a non-HOT update). The gap between this
 * and lease-2tx is what keeping the history in the hot table costs lease mode.
 */
const leaseThenDelete: Step = async (sql, client) => {
  const rows = await leaseBatch(sql, client)
  if (rows.length === 0) return 0
  await sql`
    delete from orders
    using unnest(${sql.array(rows.map((r) => r.id))}::bigint[], ${sql.array(rows.map((r) => r.lease_token))}::int[]) as lease(id, token)
    where orders.id = lease.id and orders.lease_token = lease.token and orders.status = 'processing'`
  return rows.length
}

/** Lease mode's lease of a batch, as leases.ts takes it: the rows leased, with their tokens. */
function leaseBatch(sql: postgres.Sql, client: string) {
  return sql<{ id: string; lease_token: number }[]>`
    with claimed as materialized (
      select id from orders
      where ${claimable(sql)}
      limit ${DEFAULT_BATCH_SIZE}
      for update skip locked
    )
    update orders o set status = 'processing', attempts = o.attempts + 1, lease_token = o.lease_token + 1,
                        locked_by = ${client}, run_at = clock_timestamp() + interval '30 seconds', updated_at = now()
    from claimed
    where o.id = claimed.id
    returning o.id, o.lease_token`
}

/** Leaves room on each page for a lease's new row version, so the lease can be a HOT update. */
const HOT_LEASE_FILLFACTOR = 50

/**
 * The candidate lease shape (issue 9), before the product adopts it: the lease's expiry lives in a
 * column no index or index predicate names, so taking a lease changes no indexed column and is a HOT
 * update; leased rows stay pending and in the claim index, and the claim steps over those whose
 * lease has not lapsed.
 */
async function prepareHotLease(sql: postgres.Sql): Promise<void> {
  await sql`alter table orders add column lease_expires_at timestamptz`
  await sql.unsafe(`alter table orders set (fillfactor = ${HOT_LEASE_FILLFACTOR})`)
}

const hotLeaseThenComplete: Step = async (sql, client) => {
  const rows = await sql<{ id: string; lease_token: number }[]>`
    with claimed as materialized (
      select id from orders
      where ${claimableHeld(sql)}
      limit ${DEFAULT_BATCH_SIZE}
      for update skip locked
    )
    update orders o set attempts = o.attempts + 1, lease_token = o.lease_token + 1, locked_by = ${client},
                        lease_expires_at = clock_timestamp() + interval '30 seconds'
    from claimed
    where o.id = claimed.id
    returning o.id, o.lease_token`
  if (rows.length === 0) return 0
  await sql`
    update orders set status = 'completed', completed_at = statement_timestamp(), completed_by = ${client},
                      locked_by = null, lease_expires_at = null, updated_at = statement_timestamp()
    from unnest(${sql.array(rows.map((r) => r.id))}::bigint[], ${sql.array(rows.map((r) => r.lease_token))}::int[]) as lease(id, token)
    where orders.id = lease.id and orders.lease_token = lease.token and orders.status = 'pending'`
  return rows.length
}

/**
 * The other shape issue 9 names: leases held in a narrow table, so taking one writes a small row
 * and leaves the wide order untouched; completion is then the order's only update. Leased orders
 * stay pending and in the claim index, and the claim steps over those with a lease row. A claim
 * whose snapshot predates another's committed lease can pick the same order: the lease table's key
 * turns that into a skipped row (`on conflict do nothing`), not a second holder.
 */
async function prepareNarrowLease(sql: postgres.Sql): Promise<void> {
  await sql`create table order_leases (order_id bigint primary key, locked_by text not null, expires_at timestamptz not null)`
}

/** The claim's predicate and order, stepping over orders that have a lease row. */
const claimableUnleased = (sql: postgres.Sql) =>
  sql.unsafe(
    `not exists (select 1 from order_leases l where l.order_id = orders.id) and ${claimableText.where} order by ${claimableText.orderBy}`,
  )

const narrowLeaseThenComplete: Step = async (sql, client, db) => {
  const rows = await sql<{ id: string }[]>`
    with claimed as materialized (
      select id from orders
      where ${claimableUnleased(sql)}
      limit ${DEFAULT_BATCH_SIZE}
      for update skip locked
    )
    insert into order_leases (order_id, locked_by, expires_at)
    select id, ${client}, clock_timestamp() + interval '30 seconds' from claimed
    on conflict (order_id) do nothing
    returning order_id as id`
  if (rows.length === 0) {
    // Every pick may have lost the race above: end only when nothing unleased is pending.
    const [left] = await sql`select 1 from orders where ${claimableUnleased(sql)} limit 1`
    return left ? narrowLeaseThenComplete(sql, client, db) : 0
  }
  // The order first, then its lease (an unreferenced CTE runs after the main statement): a claim
  // that locked the order on a stale snapshot then meets a committed lease and skips it. Dropping
  // the lease first would let that claim wait on this transaction while this one waits on its lock.
  await sql`
    with released as (
      delete from order_leases where order_id = any(${sql.array(rows.map((r) => r.id))}::bigint[]) and locked_by = ${client}
    )
    update orders set status = 'completed', attempts = orders.attempts + 1, completed_at = statement_timestamp(),
                      completed_by = ${client}, updated_at = statement_timestamp()
    from order_leases l
    where l.order_id = orders.id and l.locked_by = ${client}
      and orders.id = any(${sql.array(rows.map((r) => r.id))}::bigint[]) and orders.status = 'pending'`
  return rows.length
}

/** The claim's predicate and order, stepping over orders under a lease that has not lapsed. */
const claimableHeld = (sql: postgres.Sql) =>
  sql.unsafe(
    `${claimableText.where} and (lease_expires_at is null or lease_expires_at < clock_timestamp()) order by ${claimableText.orderBy}`,
  )

const insertOne: Step = async (sql) => {
  await sql`insert into orders (${orderColumns(sql, 'customerId', 'currency', 'items', 'totalCents')}) values ('c-1', 'EUR', ${sql.json(ITEMS)}, 2500)`
  return 1
}

/** The peers' single enqueue pattern: a NOTIFY in every insert transaction (one statement, one commit). */
const insertOneAndNotify: Step = async (sql) => {
  await sql`
    with inserted as (
      insert into orders (${orderColumns(sql, 'customerId', 'currency', 'items', 'totalCents')}) values ('c-1', 'EUR', ${sql.json(ITEMS)}, 2500)
      returning id
    )
    select pg_notify('bench_orders', id::text) from inserted`
  return 1
}

/**
 * Preloads the orders (spread over `keys` orderingKeys, if given), then `CLAIM_CLIENTS` loops of
 * `step` until each finds nothing to claim. `deletes`: the step deletes what it finishes instead of
 * completing it.
 */
async function drainCeiling(
  ctx: BenchContext,
  pattern: string,
  label: string,
  step: Step,
  {
    prepare,
    keys,
    deletes = false,
  }: { prepare?: (sql: postgres.Sql) => Promise<void>; keys?: number; deletes?: boolean } = {},
): Promise<CeilingResult> {
  const rows = ctx.sizes.processingOrders
  return withCeilingDatabase(ctx, pattern, async (db, sql) => {
    await prepare?.(sql)
    await preloadOrders(db, rows, keys)
    await ctx.server.checkpoint()
    const measure = await ctx.startCpuMeter(() => [])
    const started = nowMs()
    const done = await Promise.all(
      Array.from({ length: CLAIM_CLIENTS }, async (_, i) => {
        let total = 0
        for (let n = -1; n !== 0; total += n) n = await step(sql, `ceiling-${i + 1}`, db)
        return total
      }),
    )
    const ms = nowMs() - started
    const cpu = await measure()
    const claimed = done.reduce((a, b) => a + b, 0)
    const [row] = deletes
      ? await sql<{ n: number }[]>`select (${rows} - count(*))::int as n from orders`
      : await sql<{ n: number }[]>`select count(*)::int as n from orders where status = 'completed' and attempts = 1`
    const finished = deletes ? 'deleted' : 'completed with attempts = 1'
    const problems = check(claimed, rows, 'claimed').concat(check(row?.n ?? 0, rows, finished))
    return {
      pattern,
      label,
      clients: CLAIM_CLIENTS,
      rows,
      ms,
      rate: perSecond(rows, ms),
      exactlyOnce: verdict(problems, `rows claimed by the loops and rows ${finished} both equal the preload`),
      cpu,
    }
  })
}

/** `INSERT_CLIENTS` loops of `step` for `sizes.ceilingInsertSeconds`. */
async function insertCeiling(ctx: BenchContext, pattern: string, label: string, step: Step): Promise<CeilingResult> {
  return withCeilingDatabase(ctx, pattern, async (db, sql) => {
    const deadline = nowMs() + ctx.sizes.ceilingInsertSeconds * 1000
    const measure = await ctx.startCpuMeter(() => [])
    const started = nowMs()
    const done = await Promise.all(
      Array.from({ length: INSERT_CLIENTS }, async () => {
        let total = 0
        while (nowMs() < deadline) total += await step(sql, '', db)
        return total
      }),
    )
    const ms = nowMs() - started
    const cpu = await measure()
    const inserted = done.reduce((a, b) => a + b, 0)
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from orders`
    const problems = check(row?.n ?? 0, inserted, 'rows stored')
    return {
      pattern,
      label,
      clients: INSERT_CLIENTS,
      rows: inserted,
      ms,
      rate: perSecond(inserted, ms),
      exactlyOnce: verdict(problems, 'rows stored equal the inserts acknowledged'),
      cpu,
    }
  })
}

async function withCeilingDatabase<T>(
  ctx: BenchContext,
  pattern: string,
  fn: (db: Awaited<ReturnType<typeof createOurDatabase>>['db'], sql: postgres.Sql) => Promise<T>,
): Promise<T> {
  const { url, db } = await createOurDatabase(ctx, `ceiling_${pattern}`)
  const sql = postgres(url, { max: INSERT_CLIENTS, onnotice: () => {}, connection: { search_path: DEFAULT_SCHEMA } })
  try {
    return await fn(db, sql)
  } finally {
    await sql.end()
    await dropOurDatabase(ctx, url, db)
  }
}

function check(actual: number, expected: number, what: string): string[] {
  return actual === expected ? [] : [`${actual} ${what}, ${expected} expected`]
}

function verdict(problems: string[], how: string): ExactlyOnce {
  return { ok: problems.length === 0, how, problems }
}
