import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { type Db, getOrder, insertOrders, listOrders, type Order as OrderRow } from '@postgres-queue/db'
import { ApiError } from '../errors.js'
import {
  ListOrdersQuery,
  NewOrderBatchBody,
  NewOrderBody,
  Order,
  OrderBatchCreated,
  OrderPage,
  OrderParams,
} from '../schemas/orders.js'

const KiB = 1024

export const orderRoutes: FastifyPluginAsyncTypebox<{ db: Db }> = async (app, { db }) => {
  app.post(
    '/orders',
    // The largest valid order is about 12 KiB of JSON, 80 KiB with every character \u-escaped.
    { bodyLimit: 256 * KiB, schema: { body: NewOrderBody, response: { 201: Order } } },
    async (request, reply) => {
      const [order] = await insertOrders(db, [request.body])
      if (order === undefined) throw new Error('insert returned no row')
      return reply.code(201).header('location', `/orders/${order.id}`).send(toOrderJson(order))
    },
  )

  app.post(
    '/orders/batch',
    // About 8 KiB per order at the largest batch; clients with bigger orders send smaller batches.
    { bodyLimit: 8 * KiB * KiB, schema: { body: NewOrderBatchBody, response: { 201: OrderBatchCreated } } },
    async (request, reply) => {
      // One statement, so the batch is stored whole or not at all.
      const inserted = await insertOrders(db, request.body.orders)
      return reply.code(201).send({ ids: inserted.map((order) => order.id) })
    },
  )

  app.get('/orders/:id', { schema: { params: OrderParams, response: { 200: Order } } }, async (request) => {
    const order = await getOrder(db, request.params.id)
    if (order === undefined) throw new ApiError(404, 'ORDER_NOT_FOUND', `Order ${request.params.id} does not exist`)
    return toOrderJson(order)
  })

  app.get('/orders', { schema: { querystring: ListOrdersQuery, response: { 200: OrderPage } } }, async (request) => {
    const { limit } = request.query
    const orders = await listOrders(db, request.query)
    const last = orders.at(-1)
    return {
      orders: orders.map(toOrderJson),
      nextCursor: orders.length === limit && last !== undefined ? last.id : null,
    }
  })
}

function toOrderJson(order: OrderRow): Order {
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
  }
}
