import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
  type CancelResult,
  cancelOrder,
  type Db,
  type Due,
  getOrder,
  type Order as OrderRow,
  retryOrders,
  type SkipResult,
  skipOrder,
} from '@postgres-queue/db'
import type { FastifyInstance } from 'fastify'
import { ApiError } from '../errors.js'
import type { OrderIntake } from '../order-intake.js'
import { NoBody, Order, OrderParams, RetriedOrders, RetryOrdersBody } from '../schemas/orders.js'
import { toOrderJson } from './order-json.js'

/** Redrive (failed -> pending), cancel (-> cancelled) and skip (a failed order lets its key go on). */
type Deps = { db: Db; intake: OrderIntake }

// Retried orders are due at once: listening workers take them now instead of at their next poll.
// The retry has committed by then, so a failed wake-up is only logged (by the intake).

export const orderActionRoutes: FastifyPluginAsyncTypebox<Deps> = async (app, { db, intake }) => {
  // A body is required here: redriving every failed order takes an explicit `{}`, not a bare POST.
  const schema = {
    operationId: 'retryFailedOrders',
    tags: ['orders'],
    summary: 'Redrive failed orders: these ids, or every failed order up to limit, oldest first',
    body: RetryOrdersBody,
    response: { 200: RetriedOrders },
  }
  app.post('/orders/retry', { schema }, async (request) => {
    const ids = await retryOrders(db, request.body)
    request.log.info({ retried: ids.length, limit: request.body.limit }, 'failed orders retried')
    if (ids.length > 0) intake.wakeWorkers()
    return { retried: ids.length, ids }
  })

  app.register(singleOrderActions, { db, intake })
}

/** Actions on one order: they take no body. */
const singleOrderActions: FastifyPluginAsyncTypebox<Deps> = async (app, { db, intake }) => {
  acceptEmptyJsonBodies(app)
  const schema = (operationId: string, summary: string) => ({
    operationId,
    tags: ['orders'],
    summary,
    params: OrderParams,
    body: NoBody,
    response: { 200: Order },
  })

  const redrive = schema('retryOrder', "Redrive one failed order: due now, or back in its key's line if it was skipped")
  app.post('/orders/:id/retry', { schema: redrive, config: { errors: [404, 409] } }, async (request) => {
    const { id } = request.params
    const [retried] = await retryOrders(db, { ids: [id], limit: 1 })
    const order = await getOrder(db, id)
    if (order === undefined) throw new ApiError(404, 'ORDER_NOT_FOUND', `Order ${id} does not exist`)
    if (retried === undefined) {
      // Still failed here means another redrive holds the row and has not committed yet.
      const state = order.status === 'failed' ? 'is being retried by another request' : `is ${order.status}`
      throw new ApiError(409, 'ORDER_NOT_FAILED', `Order ${id} ${state}; only a failed order can be retried`)
    }
    request.log.info({ orderId: id }, 'failed order retried')
    intake.wakeWorkers()
    return toOrderJson(order)
  })

  const cancel = schema('cancelOrder', 'Cancel an order no worker is running: scheduled, waiting, pending or failed')
  app.post('/orders/:id/cancel', { schema: cancel, config: { errors: [404, 409] } }, async (request) => {
    const { id } = request.params
    const { order, due } = changedOrder(id, await cancelOrder(db, id), 'ORDER_NOT_CANCELLABLE', 'cancelled')
    request.log.info({ orderId: id }, 'order cancelled')
    intake.wakeWorkers(due) // the next order of its key, if it had one
    return toOrderJson(order)
  })

  const skip = schema('skipOrder', "Let a failed order's orderingKey go on without it; it stays failed")
  app.post('/orders/:id/skip', { schema: skip, config: { errors: [404, 409] } }, async (request) => {
    const { id } = request.params
    const { order, due } = changedOrder(id, await skipOrder(db, id), 'ORDER_NOT_SKIPPABLE', 'skipped')
    request.log.info({ orderId: id, orderingKey: order.orderingKey }, 'failed order skipped')
    intake.wakeWorkers(due)
    return toOrderJson(order)
  })
}

/** The order a cancel or a skip changed, and what it made due; a 404 or a 409 saying why not. */
function changedOrder(
  id: number,
  result: CancelResult | SkipResult,
  conflictCode: string,
  verb: string,
): { order: OrderRow; due: Due } {
  if (result.outcome === 'not_found') throw new ApiError(404, 'ORDER_NOT_FOUND', `Order ${id} does not exist`)
  if (result.outcome === 'conflict')
    throw new ApiError(409, conflictCode, `Order ${id} cannot be ${verb}: ${result.reason}`)
  return result
}

/**
 * Many clients send `Content-Type: application/json` on every POST, body or not, and Fastify's own
 * parser answers an empty one with 400 EMPTY_BODY. In this plugin's scope only, an empty JSON body
 * is no body; any other goes to the default parser (same limit, same prototype-poisoning checks).
 */
function acceptEmptyJsonBodies(
  app: Pick<FastifyInstance, 'getDefaultJsonParser' | 'removeContentTypeParser' | 'addContentTypeParser'>,
): void {
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') done(null, undefined)
    else parseJson(request, body as string, done)
  })
}
