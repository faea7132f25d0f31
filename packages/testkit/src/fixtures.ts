import type { NewOrder } from '@postgres-queue/db'

let sequence = 0

/** A valid order for tests; `overrides` replace any field. */
export function makeOrder(overrides: Partial<NewOrder> = {}): NewOrder {
  sequence += 1
  return {
    customerId: `customer-${sequence}`,
    currency: 'EUR',
    items: [
      { sku: 'SKU-1', quantity: 2, unitPriceCents: 1250 },
      { sku: 'SKU-2', quantity: 1, unitPriceCents: 499 },
    ],
    ...overrides,
  }
}
