import { Writable } from 'node:stream'
import t from 'tap'
import { createLogger } from '../src/index.js'

function capture(): { destination: Writable; text: () => string } {
  let out = ''
  const destination = new Writable({
    write(chunk, _encoding, done) {
      out += String(chunk)
      done()
    },
  })
  return { destination, text: () => out }
}

t.test('pretty mode prints one line per order, its fields inline', async (t) => {
  const { destination, text } = capture()
  const log = createLogger(
    { level: 'info', format: 'pretty', base: { service: 'worker', workerId: 'w-1' } },
    destination,
  )
  log.info({ orderId: 1, attempt: 1, waitMs: 2, processMs: 0.1 }, 'order processed')
  log.info({ orderId: 2, attempt: 1, waitMs: 3, processMs: 0.2 }, 'order processed')
  await new Promise((resolve) => setImmediate(resolve))
  const lines = text().trimEnd().split('\n')
  t.equal(lines.length, 2, 'two orders, two lines')
  t.match(lines[0], /order processed.*"workerId":"w-1".*"orderId":1.*"processMs":0\.1/)
})

t.test('JSON mode: one object per line, ISO time, an error with its stack', async (t) => {
  const { destination, text } = capture()
  const log = createLogger({ level: 'info', format: 'json', base: { service: 'worker' } }, destination)
  log.error({ orderId: 3, err: new Error('card declined') }, 'order failed')
  const line = JSON.parse(text())
  t.match(line, {
    service: 'worker',
    orderId: 3,
    msg: 'order failed',
    err: { type: 'Error', message: 'card declined' },
  })
  t.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  t.match(line.err.stack, /card declined\n\s+at /)
})
