import postgres from 'postgres'

/** What the database says about one system's tables at an instant; counters only grow. */
export interface DatabaseSample {
  /** Tables, their indexes and TOAST, in the system's schema. */
  bytes: number
  deadTuples: number
  /** Autovacuum runs on the schema's tables so far (counter). */
  autovacuums: number
  /** Checkpoints the server has completed so far, whoever asked (counter; server-wide). */
  checkpoints: number
  /** Calls of this database's statements with SKIP LOCKED (each system's claim), and their shared buffers (counters). */
  claimCalls: number
  claimBuffers: number
}

export interface DatabaseSampler {
  sample(): Promise<DatabaseSample>
  close(): Promise<void>
}

/**
 * Reads the sizes, dead tuples and autovacuum runs of `schema`'s tables (each peer keeps its own
 * schema, ours `postgres_queue`), the server's checkpoints, and pg_stat_statements' buffers for the
 * statements that claim: every system here claims with `FOR UPDATE SKIP LOCKED`, so the statements
 * that say so are its claims (and little else), whatever the system calls them.
 */
export async function openDatabaseSampler(url: string, schema: string): Promise<DatabaseSampler> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connection: { application_name: 'bench sampler' } })
  await sql`create extension if not exists pg_stat_statements`
  const [{ version } = { version: 0 }] = await sql<{ version: number }[]>`
    select current_setting('server_version_num')::int as version`
  // PostgreSQL 17 moved the checkpoint counters to pg_stat_checkpointer, and counts skipped ones apart.
  const checkpoints =
    version >= 170_000
      ? 'select num_done::bigint as n from pg_stat_checkpointer'
      : 'select (checkpoints_timed + checkpoints_req)::bigint as n from pg_stat_bgwriter'
  return {
    async sample() {
      const [tables] = await sql<{ bytes: string; dead: string; autovacuums: string }[]>`
        select coalesce(sum(pg_total_relation_size(relid)), 0)::bigint as bytes,
               coalesce(sum(n_dead_tup), 0)::bigint as dead,
               coalesce(sum(autovacuum_count), 0)::bigint as autovacuums
        from pg_stat_user_tables where schemaname = ${schema}`
      const [claims] = await sql<{ calls: string; buffers: string }[]>`
        select coalesce(sum(calls), 0)::bigint as calls,
               coalesce(sum(shared_blks_hit + shared_blks_read), 0)::bigint as buffers
        from pg_stat_statements
        where dbid = (select oid from pg_database where datname = current_database())
          and query ilike '%skip locked%'`
      const [checkpointed] = await sql.unsafe<{ n: string }[]>(checkpoints)
      return {
        bytes: Number(tables?.bytes),
        deadTuples: Number(tables?.dead),
        autovacuums: Number(tables?.autovacuums),
        checkpoints: Number(checkpointed?.n),
        claimCalls: Number(claims?.calls),
        claimBuffers: Number(claims?.buffers),
      }
    },
    close: () => sql.end(),
  }
}
