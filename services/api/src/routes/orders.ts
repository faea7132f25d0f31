import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { type Db, getOrder, listOrders } from '@postgres-queue/db'
import { ApiError } from '../errors.js'
import type { ApiMetrics } from '../metrics.js'
import type { OrderIntake } from '../order-intake.js'
import {
  IdempotencyHeaders,
  ListOrdersQuery,
  NewOrderBatchBody,
  NewOrderBody,
  Order,
  OrderBatchCreated,
  OrderPage,
  OrderParams,
} from '../schemas/orders.js'
import { requestHash, toNewOrder } from '../submission.js'
import { toOrderJson } from './order-json.js'

const KiB = 1024

const tags = ['orders']

type Deps = { db: Db; intake: OrderIntake; metrics: ApiMetrics }

export const orderRoutes: FastifyPluginAsyncTypebox<Deps> = async (app, { db, intake, metrics }) => {
  app.post(
    '/orders',
    {
      // The largest valid order is about 12 KiB of JSON, 80 KiB with every character \u-escaped.
      bodyLimit: 256 * KiB,
      schema: {
        tags,
        summary: 'Submit an order',
        description:
          '201 with the stored order. With an Idempotency-Key already used for the same body: 200 with the ' +
          'order stored first, and Idempotent-Replayed: true; for another body: 422 IDEMPOTENCY_KEY_REUSED.',
        headers: IdempotencyHeaders,
        body: NewOrderBody,
        response: { 200: Order, 201: Order },
      },
    },
    async (request, reply) => {
      const idempotencyKey = request.headers['idempotency-key']
      const newOrder = toNewOrder(request.body)
      const hash = idempotencyKey === undefined ? undefined : requestHash(request.body)
      // The key's unique index decides, not a read before the write: of concurrent duplicates, one
      // inserts and the others wait for its commit, then get its order with created: false.
      const order = await intake.submit({ ...newOrder, idempotencyKey, requestHash: hash })
      const location = `/orders/${order.id}`
      if (order.created) {
        metrics.submitted('single', 1)
        return reply.code(201).header('location', location).send(toOrderJson(order))
      }
      if (order.requestHash !== hash) {
        throw new ApiError(
          422,
          'IDEMPOTENCY_KEY_REUSED',
          `Idempotency-Key ${idempotencyKey} was already used for a different order; use a new key for a new order`,
        )
      }
      request.log.info({ orderId: order.id }, 'idempotent request replayed')
      return reply.code(200).header('location', location).header('idempotent-replayed', 'true').send(toOrderJson(order))
    },
  )

  app.post(
    '/orders/batch',
    // About 8 KiB per order at the largest batch; clients with bigger orders send smaller batches.
    {
      bodyLimit: 8 * KiB * KiB,
      schema: {
        tags,
        summary: 'Submit up to 1,000 orders, stored whole or not at all',
        body: NewOrderBatchBody,
        response: { 201: OrderBatchCreated },
      },
    },
    async (request, reply) => {
      // Every order is checked before any is inserted, with one clock for all their delays.
      const now = Date.now()
      const orders = request.body.orders.map((order, i) => toNewOrder(order, `/orders/${i}`, now))
      // One statement, so the batch is stored whole or not at all.
      const ids = await intake.submitBatch(orders)
      metrics.submitted('batch', ids.length)
      return reply.code(201).send({ ids })
    },
  )

  const getSchema = { tags, summary: 'Read one order', params: OrderParams, response: { 200: Order } }
  app.get('/orders/:id', { schema: getSchema }, async (request) => {
    const order = await getOrder(db, request.params.id)
    if (order === undefined) throw new ApiError(404, 'ORDER_NOT_FOUND', `Order ${request.params.id} does not exist`)
    return toOrderJson(order)
  })

  const listSchema = {
    tags,
    summary: 'List orders a page at a time, by id, optionally of one status',
    querystring: ListOrdersQuery,
    response: { 200: OrderPage },
  }
  app.get('/orders', { schema: listSchema }, async (request) => {
    const { limit } = request.query
    const orders = await listOrders(db, request.query)
    const last = orders.at(-1)
    return {
      orders: orders.map(toOrderJson),
      nextCursor: orders.length === limit && last !== undefined ? last.id : null,
    }
  })
}
