DROP INDEX "orders_claim_idx";--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "locked_by" text;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "idempotency_key" text;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "request_hash" text;--> statement-breakpoint
CREATE UNIQUE INDEX "orders_idempotency_key_idx" ON "orders" USING btree ("idempotency_key") WHERE "orders"."idempotency_key" is not null;--> statement-breakpoint
CREATE INDEX "orders_claim_idx" ON "orders" USING btree ("priority" DESC NULLS FIRST,"run_at","id") WHERE "orders"."status" in ('pending', 'processing');