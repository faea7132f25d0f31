import { createTestDatabase, makeOrder } from '@postgres-queue/devkit'
import t from 'tap'
import { claimOrders, closeDb, createDb, insertOrders } from '../src/index.js'

t.test('claims pending orders in one transaction', async (t) => {
  const db = createDb(await createTestDatabase(t))
  t.teardown(() => closeDb(db))
  const inserted = await insertOrders(db, [makeOrder(), makeOrder()])
  const claimed = await db.transaction((tx) => claimOrders(tx, { limit: 10 }))
  t.same(claimed.map((o) => o.id), inserted.map((o) => o.id))
})
