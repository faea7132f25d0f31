import { type Context, context, propagation, ROOT_CONTEXT, type Span, SpanKind, trace } from '@opentelemetry/api'
import type { SpanProcessor } from '@opentelemetry/sdk-trace'

/**
 * OpenTelemetry tracing: one trace per order, from `POST /orders` through its wait to its
 * processing. The services only use the API, which is a no-op until a tracer provider is
 * registered; `startTracing` registers one when the standard variables ask for it.
 */

const tracer = trace.getTracer('postgres-queue')

/**
 * Starts exporting spans over OTLP/HTTP when configured the standard way: `OTEL_TRACES_EXPORTER=otlp`,
 * or an `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the exporter reads its
 * own OTEL_EXPORTER_OTLP_* variables; OTEL_SERVICE_NAME names the service). Otherwise, and with
 * `OTEL_SDK_DISABLED=true`, nothing is loaded. Returns what flushes and stops it.
 */
export async function startTracing(
  serviceName: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<() => Promise<void>> {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT
  const exporter = env.OTEL_TRACES_EXPORTER || (endpoint ? 'otlp' : 'none')
  if (exporter !== 'otlp' || env.OTEL_SDK_DISABLED === 'true') return async () => {}
  // Loaded only when asked for: a service that does not trace pays nothing at start-up.
  const [sdk, otlp] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
  ])
  const provider = await registerTracing(new sdk.BatchSpanProcessor({ exporter: new otlp.OTLPTraceExporter() }), {
    serviceName: env.OTEL_SERVICE_NAME || serviceName,
  })
  return () => provider.shutdown()
}

/**
 * Makes a tracer provider exporting through `spanProcessor` the process's own, with async-hooks
 * context and W3C trace context: what startTracing does with OTLP, and tests with an in-memory
 * exporter. Returns the provider (its `shutdown` flushes).
 */
export async function registerTracing(
  spanProcessor: SpanProcessor,
  { serviceName }: { serviceName?: string } = {},
): Promise<{ shutdown(): Promise<void> }> {
  const [sdk, hooks, core, resources] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/core'),
    import('@opentelemetry/resources'),
  ])
  const provider = new sdk.TracerProvider({
    ...(serviceName === undefined
      ? {}
      : { resource: resources.resourceFromAttributes({ 'service.name': serviceName }) }),
    spanProcessors: [spanProcessor],
  })
  const contextManager = new hooks.AsyncLocalStorageContextManager()
  contextManager.enable()
  context.setGlobalContextManager(contextManager)
  propagation.setGlobalPropagator(new core.W3CTraceContextPropagator())
  trace.setGlobalTracerProvider(provider)
  return provider
}

/**
 * A submission's span, a child of the caller's trace context if its headers carry one (W3C
 * `traceparent`). Returns the span and the `traceparent` to store with the order: undefined while
 * tracing is off, so nothing is stored.
 */
export function startSubmitSpan(
  name: string,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  attributes: Record<string, string | number>,
): { span: Span; traceparent: string | undefined } {
  const parent = propagation.extract(ROOT_CONTEXT, headers)
  const span = tracer.startSpan(name, { kind: SpanKind.PRODUCER, attributes }, parent)
  const carrier: Record<string, string> = {}
  propagation.inject(trace.setSpan(parent, span), carrier)
  return { span, traceparent: carrier.traceparent }
}

/**
 * An order's processing span, a child of the span that submitted it (its stored `traceparent`), so
 * one trace shows submission, wait and processing. `run` runs with it active: a processor's own
 * spans nest under it.
 */
export function startProcessSpan(
  traceparent: string | null,
  attributes: Record<string, string | number>,
): { span: Span; context: Context } {
  const parent = traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT
  const span = tracer.startSpan('order process', { kind: SpanKind.CONSUMER, attributes }, parent)
  return { span, context: trace.setSpan(parent, span) }
}

export { context as traceContext, SpanStatusCode } from '@opentelemetry/api'
