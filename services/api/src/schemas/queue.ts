import Type from 'typebox'

const Timestamp = Type.String({ format: 'date-time' })
const Count = Type.Integer({ minimum: 0 })

export const QueueStats = Type.Object({
  counts: Type.Object(
    {
      scheduled: Type.Integer({ minimum: 0, description: 'Waiting for their runAt: delayed, or a retry backing off' }),
      waiting: Type.Integer({
        minimum: 0,
        description: 'Behind an earlier order of their orderingKey: neither claimable nor counted as queue depth',
      }),
      pending: Type.Integer({ minimum: 0, description: 'Due and claimable: the queue depth the fleet scales on' }),
      processing: Count,
      completed: Type.Integer({
        minimum: 0,
        description:
          "An estimate: PostgreSQL's row estimate for the table (kept by autovacuum) minus the exact counts, " +
          'because counting every finished order would read them all. The other counts are exact.',
      }),
      failed: Count,
      cancelled: Count,
    },
    { description: 'Orders by status' },
  ),
  lagSeconds: Type.Number({
    minimum: 0,
    description: 'Age of the oldest pending (due) order: how far behind the workers are; 0 when none waits',
  }),
  completedLastMinute: Count,
  completedLast5Minutes: Count,
  failedLast5Minutes: Type.Integer({ minimum: 0, description: 'failed attempts, retried or dead-lettered' }),
  blockedKeys: Type.Object(
    {
      count: Type.Integer({ minimum: 0, description: 'orderingKeys with orders waiting behind their head' }),
      onFailed: Type.Integer({
        minimum: 0,
        description: 'of those, keys whose head is a dead letter: they wait for a retry, cancel or skip',
      }),
      oldest: Type.Array(
        Type.Object({
          key: Type.String(),
          head: Type.Union([
            Type.Object({ id: Type.Integer(), status: Type.String({ description: 'the order that blocks the key' }) }),
            Type.Null(),
          ]),
          waiting: Type.Integer({ minimum: 1 }),
          waitingSince: Timestamp,
        }),
        { description: 'the keys whose orders have waited longest, oldest first (at most 10)' },
      ),
    },
    { description: 'orderingKeys holding orders back' },
  ),
  workers: Type.Array(
    Type.Object({
      id: Type.String(),
      host: Type.String(),
      pid: Type.Integer(),
      mode: Type.String({ description: 'transaction or lease' }),
      state: Type.Union([Type.Literal('alive'), Type.Literal('stopped'), Type.Literal('gone')], {
        description: 'stopped: left gracefully; gone: missed three heartbeats',
      }),
      startedAt: Timestamp,
      lastSeenAt: Timestamp,
      processed: Type.Integer({ minimum: 0, description: 'orders completed since the worker started' }),
      failed: Type.Integer({ minimum: 0, description: 'failed attempts since the worker started' }),
    }),
    { description: 'Every registered worker, newest first, until retention forgets the silent ones' },
  ),
})

export const ThroughputQuery = Type.Object(
  {
    // Required in the type because the validator fills the default before checking.
    minutes: Type.Integer({ minimum: 1, maximum: 1440, default: 15, description: 'how far back' }),
  },
  { additionalProperties: false },
)

export const Throughput = Type.Object({
  bucketSeconds: Type.Integer({ description: 'the width of each point' }),
  points: Type.Array(
    Type.Object({
      at: Type.String({ format: 'date-time', description: "the bucket's start" }),
      completed: Count,
      failed: Count,
    }),
    { description: 'oldest first, summed over the fleet; buckets without any work are left out' },
  ),
})
