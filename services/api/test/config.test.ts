import { ConfigError } from '@postgres-queue/runtime'
import t from 'tap'
import { loadConfig } from '../src/config.js'

const DATABASE_URL = 'postgres://api@db.internal:5432/orders'

t.test('applies the defaults when only DATABASE_URL is set', async (t) => {
  t.same(loadConfig({ DATABASE_URL }), {
    port: 3000,
    host: '0.0.0.0',
    databaseUrl: DATABASE_URL,
    logLevel: 'info',
    logFormat: 'json',
    databasePoolSize: 10,
  })
})

t.test('treats empty variables as unset', async (t) => {
  t.equal(loadConfig({ DATABASE_URL, PORT: '', LOG_FORMAT: '' }).port, 3000)
})

t.test('converts the variables to their declared types', async (t) => {
  const config = loadConfig({
    DATABASE_URL,
    PORT: '8080',
    DATABASE_POOL_SIZE: '25',
    LOG_LEVEL: 'debug',
    LOG_FORMAT: 'pretty',
  })
  t.equal(config.port, 8080)
  t.equal(config.databasePoolSize, 25)
  t.equal(config.logLevel, 'debug')
  t.equal(config.logFormat, 'pretty')
})

t.test('returns a frozen config', async (t) => {
  t.ok(Object.isFrozen(loadConfig({ DATABASE_URL })))
})

t.test('rejects a bad PORT, naming it', async (t) => {
  for (const port of ['http', '70000', '-1']) {
    t.throws(() => loadConfig({ DATABASE_URL, PORT: port }), { name: 'ConfigError', message: /PORT=/ }, port)
  }
})

t.test('requires DATABASE_URL', async (t) => {
  t.throws(() => loadConfig({}), { name: 'ConfigError', message: /DATABASE_URL is required/ })
})

t.test('lists the allowed values of a bad LOG_FORMAT', async (t) => {
  t.throws(() => loadConfig({ DATABASE_URL, LOG_FORMAT: 'xml' }), {
    message: /LOG_FORMAT="xml" must be one of json, pretty/,
  })
})

t.test('reports every bad variable at once', async (t) => {
  try {
    loadConfig({ PORT: 'http', DATABASE_POOL_SIZE: '0' })
    t.fail('loadConfig accepted a bad environment')
  } catch (err) {
    t.type(err, ConfigError)
    t.same(
      (err as ConfigError).problems.map((problem) => problem.split(/[ =]/)[0]).sort(),
      ['DATABASE_POOL_SIZE', 'DATABASE_URL', 'PORT'],
    )
  }
})
