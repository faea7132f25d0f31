import { ConfigError } from '@postgres-queue/runtime'
import t from 'tap'
import { loadConfig } from '../src/config.js'

const DATABASE_URL = 'postgres://api@db.internal:5432/orders'

t.test('applies the defaults when only DATABASE_URL is set', async (t) => {
  t.same(loadConfig({ DATABASE_URL }), {
    port: 3000,
    host: '0.0.0.0',
    databaseUrl: DATABASE_URL,
    databaseSchema: 'postgres_queue',
    logLevel: 'info',
    logFormat: 'json',
    databasePoolSize: 10,
    databaseConnectTimeoutSeconds: 2,
    databaseStatementTimeoutMs: 5000,
    intakeQueueLimit: 5000,
    requestTimeoutMs: 30_000,
    insertsInFlight: 1,
    allowedOrigins: [],
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
    DATABASE_CONNECT_TIMEOUT_SECONDS: '10',
    API_INSERTS_IN_FLIGHT: '3',
    LOG_LEVEL: 'debug',
    LOG_FORMAT: 'pretty',
  })
  t.equal(config.port, 8080)
  t.equal(config.databasePoolSize, 25)
  t.equal(config.databaseConnectTimeoutSeconds, 10)
  t.equal(config.insertsInFlight, 3)
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
    t.same((err as ConfigError).problems.map((problem) => problem.split(/[ =]/)[0]).sort(), [
      'DATABASE_POOL_SIZE',
      'DATABASE_URL',
      'PORT',
    ])
  }
})

t.test('rejects a connect timeout that is not 1 to 60 seconds', async (t) => {
  for (const seconds of ['0', '61', 'soon']) {
    t.throws(() => loadConfig({ DATABASE_URL, DATABASE_CONNECT_TIMEOUT_SECONDS: seconds }), {
      message: /DATABASE_CONNECT_TIMEOUT_SECONDS=/,
    })
  }
})

t.test('leaves the api open when API_TOKEN is unset or empty', async (t) => {
  t.equal(loadConfig({ DATABASE_URL }).apiToken, undefined)
  t.equal(loadConfig({ DATABASE_URL, API_TOKEN: '' }).apiToken, undefined)
})

t.test('keeps an API_TOKEN of 16 visible characters or more', async (t) => {
  const token = 'k7!Qz-0123456789'
  t.equal(loadConfig({ DATABASE_URL, API_TOKEN: token }).apiToken, token)
})

t.test('rejects a short API_TOKEN, or one with spaces, without printing it', async (t) => {
  const tokens = ['fifteen-chars-x', 'has a space 0123456789', 'tab\tinside-0123456789', 'caf\u00e9-0123456789abc']
  for (const token of tokens) {
    try {
      loadConfig({ DATABASE_URL, API_TOKEN: token })
      t.fail(`accepted ${JSON.stringify(token)}`)
    } catch (err) {
      t.type(err, ConfigError)
      t.match((err as Error).message, /API_TOKEN must be 16 or more visible ASCII characters/)
      t.notMatch((err as Error).message, token.slice(0, 8), 'the value is not in the message')
    }
  }
})

t.test('reports a bad API_TOKEN together with the other bad variables', async (t) => {
  try {
    loadConfig({ DATABASE_URL, PORT: 'http', API_TOKEN: 'short' })
    t.fail('loadConfig accepted a bad environment')
  } catch (err) {
    t.type(err, ConfigError)
    t.same((err as ConfigError).problems.map((problem) => problem.split(/[ =]/)[0]).sort(), ['API_TOKEN', 'PORT'])
  }
})

t.test('reads API_ALLOWED_ORIGINS as origins, and refuses anything else', async (t) => {
  t.same(loadConfig({ DATABASE_URL }).allowedOrigins, [])
  t.same(
    loadConfig({ DATABASE_URL, API_ALLOWED_ORIGINS: 'https://Queue.example.com/, http://ops.internal:8080' })
      .allowedOrigins,
    ['https://queue.example.com', 'http://ops.internal:8080'],
  )
  for (const bad of ['queue.example.com', 'https://queue.example.com/dashboard', 'https://user:pw@queue.example.com']) {
    t.throws(() => loadConfig({ DATABASE_URL, API_ALLOWED_ORIGINS: bad }), /API_ALLOWED_ORIGINS/, bad)
  }
})
