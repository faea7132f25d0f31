-- Written by hand from drizzle-kit's output. The migrator applies pending migrations in one
-- transaction, and a value added with ALTER TYPE ... ADD VALUE cannot be used before it commits, so
-- the status type is replaced rather than extended: the indexes below name 'scheduled'.
-- Stop the workers before applying it: the lease fence moves from attempts to lease_token.

-- Scheduled orders (a delay, a retry's backoff) leave the claim's index: a claim reads due orders only.
DROP INDEX "orders_claim_idx";--> statement-breakpoint
DROP INDEX "orders_status_id_idx";--> statement-breakpoint
ALTER TYPE "public"."order_status" RENAME TO "order_status_before_0004";--> statement-breakpoint
CREATE TYPE "public"."order_status" AS ENUM('scheduled', 'pending', 'processing', 'completed', 'failed', 'cancelled');--> statement-breakpoint
ALTER TABLE "orders" ALTER COLUMN "status" DROP DEFAULT;--> statement-breakpoint
ALTER TABLE "orders" ALTER COLUMN "status" SET DATA TYPE "public"."order_status" USING (
  CASE WHEN "status"::text = 'pending' AND "run_at" > now() THEN 'scheduled' ELSE "status"::text END
)::"public"."order_status";--> statement-breakpoint
ALTER TABLE "orders" ALTER COLUMN "status" SET DEFAULT 'pending';--> statement-breakpoint
DROP TYPE "public"."order_status_before_0004";--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "lease_token" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX "orders_claim_idx" ON "orders" USING btree ("priority" DESC NULLS FIRST,"run_at","id") WHERE "orders"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "orders_timers_idx" ON "orders" USING btree ("run_at") WHERE "orders"."status" in ('scheduled', 'processing');--> statement-breakpoint
CREATE INDEX "orders_status_id_idx" ON "orders" USING btree ("status","id") WHERE "orders"."status" <> 'completed';--> statement-breakpoint

-- Idempotency-Keys move to a table of their own, so retention can delete an order without
-- forgetting its key.
CREATE TABLE "idempotency_keys" (
	"key" text PRIMARY KEY NOT NULL,
	"request_hash" text NOT NULL,
	"order_ids" bigint[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "idempotency_keys_created_at_idx" ON "idempotency_keys" USING btree ("created_at");--> statement-breakpoint
INSERT INTO "idempotency_keys" ("key", "request_hash", "order_ids", "created_at")
  SELECT "idempotency_key", coalesce("request_hash", ''), ARRAY["id"], "created_at" FROM "orders"
  WHERE "idempotency_key" IS NOT NULL;--> statement-breakpoint
DROP INDEX "orders_idempotency_key_idx";--> statement-breakpoint
ALTER TABLE "orders" DROP COLUMN "idempotency_key";--> statement-breakpoint
ALTER TABLE "orders" DROP COLUMN "request_hash";
