import type { Order as OrderRow } from '@postgres-queue/db'
import type { Order } from '../schemas/orders.js'

/** An order as clients see it: no internal columns (lease holder, idempotency key and hash). */
export function toOrderJson(order: OrderRow): Order {
  return {
    id: order.id,
    customerId: order.customerId,
    currency: order.currency,
    items: order.items,
    totalCents: order.totalCents,
    status: order.status,
    priority: order.priority,
    runAt: order.runAt.toISOString(),
    attempts: order.attempts,
    maxAttempts: order.maxAttempts,
    lastError: order.lastError,
    createdAt: order.createdAt.toISOString(),
    updatedAt: order.updatedAt.toISOString(),
    completedAt: order.completedAt?.toISOString() ?? null,
    completedBy: order.completedBy,
    orderingKey: order.orderingKey,
    skippedAt: order.skippedAt?.toISOString() ?? null,
  }
}
