import { trace } from '@opentelemetry/api'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace'
import { insertOrders } from '@postgres-queue/db'
import { registerTracing } from '@postgres-queue/runtime'
import { makeOrder, openEffectsDatabase } from '@postgres-queue/testkit'
import t from 'tap'
import { transactionMode } from '../src/modes/transaction.js'
import type { OrderProcessor } from '../src/processor.js'
import { runBatch, running, silentLogger, testConfig } from './helpers.js'

// Tracing on, with an in-memory exporter: an order stored with the api's traceparent is processed
// in a span that is a child of the submission's, so one trace shows submission, wait and
// processing; a processor's own spans nest under it.

const exporter = new InMemorySpanExporter()
await registerTracing(new SimpleSpanProcessor({ exporter }))

const SUBMIT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const SUBMIT_SPAN = 'b7ad6b7169203331'

t.test("an order's processing joins the trace it was submitted in; the processor's spans nest under it", async (t) => {
  const { db } = await openEffectsDatabase(t)
  const [traced, untraced] = await insertOrders(db, [
    makeOrder({ traceparent: `00-${SUBMIT_TRACE}-${SUBMIT_SPAN}-01` }),
    makeOrder({ customerId: 'poison' }),
  ])
  const processor: OrderProcessor = async (order) => {
    trace.getTracer('team').startActiveSpan('charge card', (span) => span.end())
    if (order.customerId === 'poison') throw new Error('card declined')
  }
  await runBatch(transactionMode, { db, processor, config: testConfig(), log: silentLogger, ...running })

  const spans = exporter.getFinishedSpans()
  const processed = spans.filter((s) => s.name === 'order process')
  const ofTraced = processed.find((s) => s.attributes['order.id'] === traced!.id)
  t.equal(ofTraced?.spanContext().traceId, SUBMIT_TRACE, 'in the submission trace')
  t.equal(ofTraced?.parentSpanContext?.spanId, SUBMIT_SPAN, "a child of the submission's span")
  t.match(ofTraced?.attributes, { 'order.attempt': 1 })
  t.equal(ofTraced?.status.code, 0, 'unset: it succeeded')

  const ofUntraced = processed.find((s) => s.attributes['order.id'] === untraced!.id)
  t.equal(ofUntraced?.parentSpanContext, undefined, 'an order stored without a trace starts its own')
  t.match(ofUntraced?.status, { code: 2, message: /card declined/ }, 'its failure is the span status')

  const charges = spans.filter((s) => s.name === 'charge card')
  t.same(
    charges.map((s) => s.parentSpanContext?.spanId).sort(),
    [ofTraced?.spanContext().spanId, ofUntraced?.spanContext().spanId].sort(),
    "each processor span nests under its order's processing",
  )
})
