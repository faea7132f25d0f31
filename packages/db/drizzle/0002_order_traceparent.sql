-- The W3C trace context an order was submitted under (tracing on), so its processing joins that trace.
ALTER TABLE "orders" ADD COLUMN "traceparent" text;