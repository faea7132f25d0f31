import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace'
import { getOrder } from '@postgres-queue/db'
import { registerTracing } from '@postgres-queue/runtime'
import { makeOrder } from '@postgres-queue/testkit'
import t from 'tap'
import { startApi } from './helpers.js'

// Tracing on, with an in-memory exporter: POST /orders runs in a span that continues the caller's
// trace, and each stored order keeps that span's traceparent for its processing to join
// (services/worker/test/tracing.test.ts picks it up from there).

const exporter = new InMemorySpanExporter()
await registerTracing(new SimpleSpanProcessor({ exporter }))

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const CALLER_SPAN = '00f067aa0ba902b7'

t.test("a submission's span continues the caller's trace, and the order stores its traceparent", async (t) => {
  const { app, db } = await startApi(t)
  exporter.reset()
  const response = await app.inject({
    method: 'POST',
    url: '/orders',
    payload: makeOrder(),
    headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` },
  })
  t.equal(response.statusCode, 201)
  const [span] = exporter.getFinishedSpans().filter((s) => s.name === 'order submit')
  t.ok(span, 'one submit span')
  t.equal(span?.spanContext().traceId, CALLER_TRACE, "in the caller's trace")
  t.equal(span?.parentSpanContext?.spanId, CALLER_SPAN, "a child of the caller's span")
  t.equal(span?.attributes['order.ids'], String(response.json().id))
  const stored = await getOrder(db, response.json().id)
  t.equal(
    stored?.traceparent,
    `00-${CALLER_TRACE}-${span?.spanContext().spanId}-01`,
    "the order keeps the submit span's traceparent",
  )
})

t.test(
  'without a caller trace, a submission starts one; a batch stores one traceparent for all its orders',
  async (t) => {
    const { app, db } = await startApi(t)
    exporter.reset()
    const response = await app.inject({
      method: 'POST',
      url: '/orders/batch',
      payload: { orders: [makeOrder(), makeOrder()] },
    })
    t.equal(response.statusCode, 201)
    const [span] = exporter.getFinishedSpans().filter((s) => s.name === 'order batch submit')
    t.equal(span?.parentSpanContext, undefined, 'a root span')
    const traceparents = await Promise.all(
      response.json().ids.map(async (id: number) => (await getOrder(db, id))?.traceparent),
    )
    t.same(
      traceparents,
      [0, 1].map(() => `00-${span?.spanContext().traceId}-${span?.spanContext().spanId}-01`),
    )
  },
)
