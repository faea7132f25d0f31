import { channelOf, type Db, sql } from '@postgres-queue/db'
import { makeOrder, skewClock, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { startApi } from './helpers.js'

// Time belongs to the database: an api host whose clock is a minute off must not move an order's
// due time by a minute, nor tell the workers a wrong one.

async function databaseNow(db: Db): Promise<number> {
  const [row] = await db.execute<{ now: string }>(sql`select clock_timestamp() as now`)
  return Date.parse(row!.now)
}

for (const skewMs of [60_000, -60_000]) {
  t.test(`an api whose clock is ${skewMs / 1000} s off schedules by the database's clock`, async (t) => {
    const { app, db } = await startApi(t)
    const payloads: string[] = []
    const { unlisten } = await db.$client.listen(channelOf(db), (payload) => payloads.push(payload))
    t.teardown(unlisten)
    skewClock(t, skewMs)

    const before = await databaseNow(db)
    const now = await app.inject({ method: 'POST', url: '/orders', payload: { ...makeOrder(), delaySeconds: 0 } })
    const later = await app.inject({ method: 'POST', url: '/orders', payload: { ...makeOrder(), delaySeconds: 30 } })
    const batch = await app.inject({
      method: 'POST',
      url: '/orders/batch',
      payload: {
        orders: [
          { ...makeOrder(), delaySeconds: 0 },
          { ...makeOrder(), delaySeconds: 20 },
        ],
      },
    })
    const after = await databaseNow(db)

    t.equal(now.json().status, 'pending', 'delaySeconds 0: due at once')
    const runAtNow = Date.parse(now.json().runAt)
    t.ok(runAtNow >= before && runAtNow <= after, 'its runAt is the database clock at the insert')
    t.equal(later.json().status, 'scheduled')
    const laterDelay = Date.parse(later.json().runAt) - before
    t.ok(laterDelay >= 30_000 && laterDelay <= 30_000 + (after - before), `30 s from the insert: ${laterDelay} ms`)
    const [batchNow, batchLater] = await Promise.all(
      (batch.json().ids as number[]).map(async (id) => (await app.inject({ url: `/orders/${id}` })).json()),
    )
    t.equal(batchNow.status, 'pending', 'in a batch too')
    t.equal(batchLater.status, 'scheduled')
    t.ok(Math.abs(Date.parse(batchLater.runAt) - before - 20_000) <= after - before + 1, 'due 20 s on')

    // The workers are told when the first of those due later comes due: the database's time.
    await waitFor(() => payloads.some((p) => p !== ''), { message: 'a wake-up naming a due time' })
    const announced = payloads.filter((p) => p !== '').map(Number)
    t.ok(
      announced.every((at) => [later.json().runAt, batchLater.runAt].map(Date.parse).includes(at)),
      'the due times announced are those stored',
    )
  })
}
