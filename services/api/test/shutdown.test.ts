import { setTimeout as sleep } from 'node:timers/promises'
import { waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { startApi } from './helpers.js'

t.test('on close, finishes the requests in flight and closes their keep-alive connections', async (t) => {
  const { app } = await startApi(t)
  let entered!: () => void
  const handlerEntered = new Promise<void>((resolve) => (entered = resolve))
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  app.get('/slow', async () => {
    entered()
    await released
    return { done: true }
  })
  // Lets the request finish once close() has stopped the server listening, so its connection is busy
  // then and not among the idle ones Node closes at once. (preClose runs before that: not awaited.)
  app.addHook('preClose', async () => {
    void waitFor(() => !app.server.listening, { message: 'close() to stop the server listening' })
      .catch((err: unknown) => t.threw(err))
      .finally(release)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }

  // fetch keeps connections alive, as most HTTP clients do.
  const response = fetch(`http://127.0.0.1:${port}/slow`)
  await handlerEntered
  const closed = app.close().then(() => 'closed')

  const answered = await response
  t.equal(answered.status, 200)
  t.same(await answered.json(), { done: true })
  t.equal(answered.headers.get('connection'), 'close')
  t.equal(await Promise.race([closed, sleep(2000, 'still open', { ref: false })]), 'closed')
})
