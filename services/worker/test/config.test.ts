import { ConfigError } from '@postgres-queue/runtime'
import t from 'tap'
import { loadConfig } from '../src/config.js'

const host = { hostname: 'box', pid: 42, instance: 'a1b2' }
const required = { DATABASE_URL: 'postgres://localhost/db' }

t.test('defaults fill every optional variable', async (t) => {
  const config = loadConfig(required, host)
  t.match(config, {
    workerId: 'box-42-a1b2',
    cron: '*/5 * * * * *',
    batchSize: 50,
    maxBatchSize: 200,
    orderTimeoutMs: 10_000,
    batchTimeoutMs: 30_000,
    shutdownTimeoutMs: 10_000,
    log: { level: 'info', format: 'json' },
  })
  t.ok(Object.isFrozen(config))
})

t.test('values are converted from strings', async (t) => {
  const config = loadConfig({ ...required, WORKER_BATCH_SIZE: '200', WORKER_ID: 'w-7', LOG_FORMAT: 'pretty' }, host)
  t.match(config, { batchSize: 200, workerId: 'w-7', log: { format: 'pretty' } })
})

t.test('claims never grow to less than the first one: WORKER_MAX_BATCH_SIZE below WORKER_BATCH_SIZE', async (t) => {
  t.match(loadConfig({ ...required, WORKER_BATCH_SIZE: '500' }, host), { batchSize: 500, maxBatchSize: 500 })
  t.match(loadConfig({ ...required, WORKER_BATCH_SIZE: '10', WORKER_MAX_BATCH_SIZE: '1' }, host), {
    batchSize: 10,
    maxBatchSize: 10,
  })
  t.match(loadConfig({ ...required, WORKER_MAX_BATCH_SIZE: '50' }, host), { batchSize: 50, maxBatchSize: 50 })
})

t.test('each bad variable is named in the error', async (t) => {
  const err = t.throws(() =>
    loadConfig({ WORKER_BATCH_SIZE: 'many', LOG_LEVEL: 'loud', WORKER_CRON: '*/5 * * * * *' }, host),
  ) as ConfigError
  t.type(err, ConfigError)
  t.match(err.message, /DATABASE_URL is required/)
  t.match(err.message, /WORKER_BATCH_SIZE="many"/)
  t.match(err.message, /LOG_LEVEL="loud" must be one of fatal, error, warn, info, debug, trace, silent/)
})

t.test('an invalid cron expression is rejected by name', async (t) => {
  t.throws(() => loadConfig({ ...required, WORKER_CRON: 'every five seconds' }, host), /WORKER_CRON/)
})

t.test('an order timeout longer than the batch budget is rejected', async (t) => {
  t.throws(
    () => loadConfig({ ...required, WORKER_ORDER_TIMEOUT_MS: '60000', WORKER_BATCH_TIMEOUT_MS: '1000' }, host),
    /WORKER_ORDER_TIMEOUT_MS=60000 must not exceed WORKER_BATCH_TIMEOUT_MS=1000/,
  )
})

t.test('a bad value that holds a password is reported without it', async (t) => {
  t.throws(() => loadConfig({ ...required, WORKER_BATCH_SIZE: 'postgres://app:s3cret@db:5432/q' }, host), {
    message: /WORKER_BATCH_SIZE="postgres:\/\/app:\*\*\*@db:5432\/q"/,
  })
})

t.test('retention keeps at least a day, and a key outlives its orders', async (t) => {
  t.throws(() => loadConfig({ ...required, RETENTION_DAYS: '0' }, host), /RETENTION_DAYS="0"/)
  t.throws(
    () => loadConfig({ ...required, RETENTION_DAYS: '14', IDEMPOTENCY_KEY_DAYS: '7' }, host),
    /IDEMPOTENCY_KEY_DAYS=7 must be at least RETENTION_DAYS=14/,
  )
  t.match(loadConfig(required, host), { retentionDays: 7, idempotencyKeyDays: 30 })
})

t.test('the default worker id differs between processes that share a hostname and pid', async (t) => {
  const a = loadConfig(required, { hostname: 'box', pid: 7, instance: 'aaaa' })
  const b = loadConfig(required, { hostname: 'box', pid: 7, instance: 'bbbb' })
  t.not(a.workerId, b.workerId)
})
