import { connect } from 'node:net'
import { countOrdersByStatus } from '@postgres-queue/db'
import t from 'tap'
import { startApi } from './helpers.js'

// A body over the limit is refused with a 413 the client can read: a client that sends its whole
// body before it reads (Node's fetch does) must not meet a closed connection instead.

const { app, db } = await startApi(t)
await app.listen({ port: 0, host: '127.0.0.1' })
const { port } = app.server.address() as { port: number }

/** Sends the whole `bytes`-byte body, waiting for each write, and only then reads the answer. */
function sendWholeBodyThenRead(path: string, bytes: number): Promise<{ head: string; writeError?: string }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let received = ''
    let writeError: string | undefined
    socket.setEncoding('utf8')
    socket.on('data', (chunk) => (received += chunk))
    socket.on('error', (err: NodeJS.ErrnoException) => (writeError ??= err.code))
    socket.on('close', () => resolve({ head: received.split('\r\n')[0] ?? '', writeError }))
    socket.on('connect', async () => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nhost: api\r\ncontent-type: application/json\r\ncontent-length: ${bytes}\r\n\r\n`,
      )
      const chunk = Buffer.alloc(64 * 1024, 'x')
      for (let sent = 0; sent < bytes && !socket.destroyed; sent += chunk.length) {
        if (!socket.write(chunk.subarray(0, Math.min(chunk.length, bytes - sent)))) {
          await new Promise((drained) => socket.once('drain', drained))
        }
      }
      socket.end()
    })
  })
}

for (const [path, bytes] of [
  ['/orders', 5_000_000],
  ['/orders/batch', 20_000_000],
] as const) {
  t.test(`a ${bytes / 1e6} MB body to ${path} gets its 413, not a reset`, async (t) => {
    const { head, writeError } = await sendWholeBodyThenRead(path, bytes)
    t.equal(writeError, undefined, 'every byte of the body was taken')
    t.equal(head, 'HTTP/1.1 413 Payload Too Large')
    t.equal((await countOrdersByStatus(db)).pending, 0, 'nothing stored')
  })
}
