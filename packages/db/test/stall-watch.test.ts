import { makeOrder, openTestDb } from '@postgres-queue/testkit'
import t from 'tap'
import { insertOrders, oldestUnansweredCall, orders, sql, watchForStalls } from '../src/index.js'

// The watch itself (the services' use of it: test/outage/silent-connection.test.ts).

const LIMIT_MS = 2000

t.test('a call unanswered past the limit is a stall, reported once', async (t) => {
  const db = await openTestDb(t)
  const stalls: number[] = []
  const watch = watchForStalls({ db, limitMs: LIMIT_MS, onStalled: ({ unansweredMs }) => stalls.push(unansweredMs) })
  t.teardown(() => watch.stop())
  // pg_sleep stands in for a call whose answer does not come; the worker's own calls all end
  // within statement_timeout, which is below the limit.
  await db.execute(sql`select pg_sleep(${(LIMIT_MS + 2500) / 1000})`)
  t.equal(stalls.length, 1, 'reported once')
  t.ok(stalls[0]! >= LIMIT_MS, `after ${stalls[0]} ms unanswered`)
  t.equal(oldestUnansweredCall(db), undefined, 'and the call, once answered, is no longer counted')
})

t.test('answers that keep coming are no stall, however long the calls run in all', async (t) => {
  const db = await openTestDb(t)
  let stalled = false
  const watch = watchForStalls({ db, limitMs: LIMIT_MS, onStalled: () => (stalled = true) })
  t.teardown(() => watch.stop())
  for (let i = 0; i < 8; i++) await db.execute(sql`select pg_sleep(0.5)`)
  t.notOk(stalled, 'eight half-second calls back to back: 4 s of calls, none over the limit')
})

t.test('time the process was frozen does not count: an answer read on waking is no stall', async (t) => {
  const db = await openTestDb(t)
  let stalled = false
  const watch = watchForStalls({ db, limitMs: LIMIT_MS, onStalled: () => (stalled = true) })
  t.teardown(() => watch.stop())
  const call = db.execute(sql`select pg_sleep(0.2)`)
  // The event loop blocked past the limit, as a paused container's would be: the answer arrives
  // meanwhile and waits in the socket until the process runs again.
  const frozenUntil = performance.now() + LIMIT_MS + 1000
  while (performance.now() < frozenUntil) {}
  await call
  t.notOk(stalled, 'no stall')
})

t.test(
  'every way of reaching the server is watched: the query builder, a transaction, a reserved connection',
  async (t) => {
    const db = await openTestDb(t)
    const sleepPastLimit = sql`pg_sleep(${(LIMIT_MS + 2500) / 1000})`
    const ways: [string, () => Promise<unknown>][] = [
      ['the query builder', () => db.select({ slept: sleepPastLimit }).from(orders).limit(1)],
      ['a statement inside db.transaction', () => db.transaction((tx) => tx.execute(sql`select ${sleepPastLimit}`))],
      [
        'a reserved connection',
        async () => {
          const reserved = await db.$client.reserve()
          try {
            await reserved.unsafe(`select pg_sleep(${(LIMIT_MS + 2500) / 1000})`)
          } finally {
            reserved.release()
          }
        },
      ],
    ]
    await insertOrders(db, [makeOrder()])
    for (const [way, call] of ways) {
      const stalls: number[] = []
      const watch = watchForStalls({
        db,
        limitMs: LIMIT_MS,
        onStalled: ({ unansweredMs }) => stalls.push(unansweredMs),
      })
      await call()
      watch.stop()
      t.equal(stalls.length, 1, `${way}: reported`)
      t.equal(oldestUnansweredCall(db), undefined, `${way}: no longer counted once answered`)
    }
  },
)
