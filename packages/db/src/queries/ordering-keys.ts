import { type SQL, sql } from 'drizzle-orm'
import type { Db } from '../client.js'
import { keyHeadStatus, orderingKeys, orders } from '../schema.js'
import { Statement } from '../statement.js'

// Ordering keys: the orders of one key run one at a time, in id order, across the fleet.
//
// Only a key's head (its oldest order not finished: scheduled, pending, processing, or failed and
// not skipped) is ever in the claim's reach; the orders behind it are 'waiting', in no index a
// claim or a promotion reads. So the claim is the same statement with or without keys, and 10,000
// blocked keys cost it nothing: it never sees their orders. Settling a head (completed, cancelled,
// skipped) promotes the key's next order, in the same transaction; a head that is retried stays the
// head through its backoff, and one dead-lettered holds its key until it is redriven, cancelled or
// skipped. orders_key_head_idx, unique, makes a second head impossible whatever the code does.
//
// Every change to a key's line (a submission, a head settling, cancel, skip, redrive) first locks
// the key's row in ordering_keys (lockOrderingKeys), then decides in a LATER statement of the same
// transaction, whose snapshot sees whatever the previous holder of the lock committed. One
// statement could not: its snapshot is taken before it waits for the lock.
//
// Lock order, everywhere: an order's row (held by a claim) before its key's row; a caller that
// holds a key's lock never waits for an order's row (SKIP LOCKED), so no two of them deadlock.

/**
 * Locks the keys' rows in ordering_keys, creating those that are missing, in key order (so two
 * callers locking overlapping sets queue rather than deadlock). `on conflict ... where false` locks
 * an existing row without writing it.
 */
export const lockOrderingKeys = new Statement<{ keys: readonly string[] }>(sql`
  insert into ${orderingKeys} (key)
  select distinct key from unnest(${sql.placeholder('keys')}::text[]) as key order by key
  on conflict (key) do update set key = excluded.key where false`)

/**
 * A waiting order that becomes its key's head: due at its runAt if that is still ahead (scheduled),
 * else due now (pending), and it joins the claim's line now. Kept at its submission time, it would
 * go ahead of every order submitted since it: a backlog of keys, promoted one head after another,
 * would hold newer unkeyed orders back until it drained.
 */
const asHead = sql`
  status = (case when ${orders.runAt} > statement_timestamp() then 'scheduled' else 'pending' end),
  run_at = greatest(${orders.runAt}, statement_timestamp()),
  updated_at = statement_timestamp()`

/** The next waiting order of the key `key` (an SQL expression), by orders_key_waiting_idx. */
const nextWaiting = (key: SQL) => sql`(
  select next.id from ${orders} as next where next.ordering_key = ${key} and next.status = 'waiting'
  order by next.id limit 1)`

/**
 * An UPDATE (for a CTE) that promotes the next order of each key in `settledHeads`, a relation with
 * an `ordering_key` column (null for an unkeyed order): the heads this very statement completed or
 * cancelled. Returns `(id, status, run_at)` of each order promoted.
 */
export function promoteNextOf(settledHeads: SQL): SQL {
  return sql`
    update ${orders} set ${asHead}
    where ${orders.id} in (
      select ${nextWaiting(sql`settled.ordering_key`)} from ${settledHeads} as settled
      where settled.ordering_key is not null)
    returning ${orders.id}, ${orders.status}, ${orders.runAt}`
}

/**
 * Promotes the next order of each of `keys` that has no head: the statement that follows a change
 * to a key's line made without knowing its outcome (a cancel, skip or redrive), under the keys'
 * locks. Returns the orders promoted as `[id, status, run_at]`.
 */
export const promoteHeadless = new Statement<{ keys: readonly string[] }>(sql`
  update ${orders} set ${asHead}
  where ${orders.id} in (
    select ${nextWaiting(sql`line.key`)}
    from unnest(${sql.placeholder('keys')}::text[]) as line(key)
    where not exists (
      select from ${orders} as head
      where head.ordering_key = line.key and ${keyHeadStatus(sql`head.status`, sql`head.skipped_at`)}))
  returning ${orders.id}, ${orders.status}, ${orders.runAt}`)

/** Orders made their key's head, and when each is due. */
export interface Promoted {
  id: number
  status: 'pending' | 'scheduled'
  runAt: Date
}

export function decodePromoted(rows: readonly unknown[][]): Promoted[] {
  return rows.map(([id, status, runAt]) => ({
    id: Number(id),
    status: status as Promoted['status'],
    runAt: new Date(runAt as string),
  }))
}

/** The distinct keys of `orders`, for lockOrderingKeys. */
export function keysOf(keyed: readonly { orderingKey?: string | null }[]): string[] {
  const keys = new Set<string>()
  for (const { orderingKey } of keyed) if (orderingKey) keys.add(orderingKey)
  return [...keys]
}

/** A key whose later orders wait, and what they wait for. */
export interface BlockedKey {
  key: string
  /** The order at the front of the key's line, or undefined if none (never, while the invariant holds). */
  head?: { id: number; status: string }
  /** Orders waiting behind it. */
  waiting: number
  /** When the oldest of them was submitted. */
  waitingSince: Date
}

export interface BlockedKeys {
  /** Keys with orders waiting behind their head. */
  count: number
  /** Of those, the keys whose head is a dead letter: they wait for a redrive, cancel or skip. */
  onFailed: number
  /** The `limit` keys waiting longest. */
  oldest: BlockedKey[]
}

/**
 * The keys that hold orders back, for /queue/stats and the dashboard. Reads orders_key_waiting_idx
 * (the waiting orders only) and each shown key's head by orders_key_head_idx: its cost grows with
 * the orders waiting, not with the table.
 */
export async function getBlockedKeys(db: Db, { limit }: { limit: number }): Promise<BlockedKeys> {
  const [row] = await db.execute<{ count: number; on_failed: number; oldest: BlockedKeyRow[] | null }>(sql`
    with lines as (
      select ordering_key as key, count(*)::int as waiting, min(created_at) as waiting_since
      from ${orders} where status = 'waiting' group by ordering_key
    ),
    heads as (
      select lines.*, head.id as head_id, head.status as head_status
      from lines left join ${orders} as head
        on head.ordering_key = lines.key and ${keyHeadStatus(sql`head.status`, sql`head.skipped_at`)}
    )
    select
      (select count(*) from heads)::int as count,
      (select count(*) from heads where head_status = 'failed')::int as on_failed,
      (select json_agg(oldest) from (
        select key, waiting, waiting_since, head_id, head_status from heads order by waiting_since limit ${limit}
      ) as oldest) as oldest`)
  return {
    count: row?.count ?? 0,
    onFailed: row?.on_failed ?? 0,
    oldest: (row?.oldest ?? []).map((k) => ({
      key: k.key,
      head: k.head_id === null ? undefined : { id: Number(k.head_id), status: k.head_status as string },
      waiting: k.waiting,
      waitingSince: new Date(k.waiting_since),
    })),
  }
}

interface BlockedKeyRow {
  key: string
  waiting: number
  waiting_since: string
  head_id: number | null
  head_status: string | null
}
