-- Ordering keys: orders sharing a key run one at a time, in id order (queries/ordering-keys.ts).
-- Each key's one head is held unique by orders_key_head_idx; the orders behind it are 'waiting',
-- found by orders_key_waiting_idx when the head settles; ordering_keys rows are the key's lock.
-- It reads the orders table four times (three index builds, the checks) under its lock: on a table
-- of millions of orders, seconds in which submissions and claims wait. Run it in a quiet moment.
CREATE TABLE "ordering_keys" (
	"key" text PRIMARY KEY NOT NULL
);
--> statement-breakpoint
ALTER TABLE "orders" DROP CONSTRAINT "orders_status_known";--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "ordering_key" text;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "skipped_at" timestamp with time zone;--> statement-breakpoint
CREATE UNIQUE INDEX "orders_key_head_idx" ON "orders" USING btree ("ordering_key") WHERE "orders"."ordering_key" is not null and ("orders"."status" in ('scheduled', 'pending', 'processing') or ("orders"."status" = 'failed' and "orders"."skipped_at" is null));--> statement-breakpoint
CREATE INDEX "orders_key_waiting_idx" ON "orders" USING btree ("ordering_key","id") WHERE "orders"."status" = 'waiting';--> statement-breakpoint
CREATE INDEX "orders_ordering_key_idx" ON "orders" USING btree ("ordering_key","id") WHERE "orders"."ordering_key" is not null;--> statement-breakpoint
ALTER TABLE "orders" ADD CONSTRAINT "orders_waiting_has_key" CHECK ("orders"."status" <> 'waiting' or "orders"."ordering_key" is not null);--> statement-breakpoint
ALTER TABLE "orders" ADD CONSTRAINT "orders_status_known" CHECK ("orders"."status" in ('scheduled', 'waiting', 'pending', 'processing', 'completed', 'failed', 'cancelled'));
