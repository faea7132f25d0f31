import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
  type Db,
  getOrder,
  type IdempotencyKey,
  listOrders,
  type Order as OrderRow,
  type StoredKey,
} from '@postgres-queue/db'
import { SpanStatusCode, startSubmitSpan } from '@postgres-queue/runtime'
import { ApiError } from '../errors.js'
import type { ApiMetrics } from '../metrics.js'
import type { IntakeResult, OrderIntake } from '../order-intake.js'
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
      // Bounded by the intake's own queue (length and wait), which groups submissions into inserts.
      config: { ownQueue: true, errors: [410, 422] },
      schema: {
        operationId: 'submitOrder',
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
      const idempotency = idempotencyOf(request.headers['idempotency-key'], request.body)
      // The key's primary key decides, not a read before the write: of concurrent duplicates, one
      // stores and the others wait for its commit, then get what it stored.
      const result = await traced('order submit', request.headers, 1, (traceparent) =>
        intake.submit({ ...toNewOrder(request.body), traceparent }, idempotency),
      )
      if (result.stored) {
        const order = result.orders[0] as OrderRow
        metrics.submitted('single', 1)
        return reply.code(201).header('location', `/orders/${order.id}`).send(toOrderJson(order))
      }
      const [orderId] = checkReplay(result.key, idempotency)
      const order = orderId === undefined ? undefined : await getOrder(db, orderId)
      if (order === undefined) {
        throw new ApiError(
          410,
          'ORDER_DELETED',
          `Idempotency-Key ${result.key.key} stored order ${orderId}, which retention has since deleted; nothing was stored again`,
        )
      }
      request.log.info({ orderId: order.id }, 'idempotent request replayed')
      return reply
        .code(200)
        .header('location', `/orders/${order.id}`)
        .header('idempotent-replayed', 'true')
        .send(toOrderJson(order))
    },
  )

  app.post(
    '/orders/batch',
    // About 8 KiB per order at the largest batch; clients with bigger orders send smaller batches.
    {
      bodyLimit: 8 * KiB * KiB,
      config: { errors: [422] },
      schema: {
        operationId: 'submitOrderBatch',
        tags,
        summary: 'Submit up to 1,000 orders, stored whole or not at all',
        description:
          '201 with the ids. With an Idempotency-Key already used for the same body: 200 with the ids stored ' +
          'first, and Idempotent-Replayed: true; for another body: 422 IDEMPOTENCY_KEY_REUSED.',
        headers: IdempotencyHeaders,
        body: NewOrderBatchBody,
        response: { 200: OrderBatchCreated, 201: OrderBatchCreated },
      },
    },
    async (request, reply) => {
      // Every order is checked before any is inserted; their delays count from the one insert.
      const orders = request.body.orders.map((order, i) => toNewOrder(order, `/orders/${i}`))
      const idempotency = idempotencyOf(request.headers['idempotency-key'], request.body)
      // One statement, so the batch is stored whole or not at all.
      const result = await traced('order batch submit', request.headers, orders.length, (traceparent) => {
        // In place, not a copy of each: the orders are this request's own, made by toNewOrder.
        for (const order of orders) order.traceparent = traceparent
        return intake.submitBatch(orders, idempotency)
      })
      if (result.stored) {
        metrics.submitted('batch', result.ids.length)
        return reply.code(201).send({ ids: result.ids })
      }
      const ids = checkReplay(result.key, idempotency)
      request.log.info({ orders: ids.length }, 'idempotent request replayed')
      return reply.code(200).header('idempotent-replayed', 'true').send({ ids })
    },
  )

  const getSchema = {
    operationId: 'getOrder',
    tags,
    summary: 'Read one order',
    params: OrderParams,
    response: { 200: Order },
  }
  app.get('/orders/:id', { schema: getSchema, config: { errors: [404] } }, async (request) => {
    const order = await getOrder(db, request.params.id)
    if (order === undefined) throw new ApiError(404, 'ORDER_NOT_FOUND', `Order ${request.params.id} does not exist`)
    return toOrderJson(order)
  })

  const listSchema = {
    operationId: 'listOrders',
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

/** The request's Idempotency-Key, bound to a hash of its body, if it carries one. */
function idempotencyOf(key: string | undefined, body: unknown): IdempotencyKey | undefined {
  return key === undefined ? undefined : { key, requestHash: requestHash(body) }
}

/**
 * Runs a submission in its span (tracing on): a child of the caller's `traceparent`, if it sent one,
 * and the parent of each stored order's processing. The orders store the span's traceparent.
 */
async function traced<T extends IntakeResult>(
  name: string,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  count: number,
  submit: (traceparent: string | undefined) => Promise<T>,
): Promise<T> {
  const { span, traceparent } = startSubmitSpan(name, headers, { 'order.count': count })
  try {
    const result = await submit(traceparent)
    // A batch's 1,000 ids joined only when the span is kept (tracing on).
    if (result.stored && span.isRecording()) span.setAttribute('order.ids', result.ids.join(','))
    return result
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) })
    throw err
  } finally {
    span.end()
  }
}

/** A taken key's order ids, if it was taken by this same request; a 422 if by another. */
function checkReplay(stored: StoredKey, idempotency: IdempotencyKey | undefined): number[] {
  if (stored.requestHash !== idempotency?.requestHash) {
    throw new ApiError(
      422,
      'IDEMPOTENCY_KEY_REUSED',
      `Idempotency-Key ${stored.key} was already used for a different request; use a new key for a new request`,
    )
  }
  return stored.orderIds
}
