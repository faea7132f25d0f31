// A team's own processor for the stock worker image, mounted at /app/processor (the README's
// compose override): one row in the team's own public.shipments per order, committed with its
// completion. Plain JavaScript, run as it is: the image's own packages resolve from /app.
import { sql } from '@postgres-queue/db'

export const processor = async (order) => async (tx) => {
  await tx.execute(sql`insert into shipments (order_id) values (${order.id})`)
}
