-- The baseline: the whole queue, created in its own schema (DATABASE_SCHEMA, default postgres_queue),
-- which migrateDatabase creates and puts alone on the search_path: names are left unqualified here.
-- Installs of the earlier layout (everything in public) are upgraded by legacy/upgrade.sql instead.
CREATE TABLE "idempotency_keys" (
	"key" text PRIMARY KEY NOT NULL,
	"request_hash" text NOT NULL,
	"order_ids" bigint[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "order_throughput" (
	"bucket" timestamp with time zone NOT NULL,
	"worker_id" text NOT NULL,
	"completed" integer DEFAULT 0 NOT NULL,
	"failed" integer DEFAULT 0 NOT NULL,
	CONSTRAINT "order_throughput_bucket_worker_id_pk" PRIMARY KEY("bucket","worker_id")
);
--> statement-breakpoint
CREATE TABLE "orders" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "orders_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"customer_id" text NOT NULL,
	"currency" text NOT NULL,
	"items" jsonb NOT NULL,
	"total_cents" bigint NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"priority" integer DEFAULT 0 NOT NULL,
	"run_at" timestamp with time zone DEFAULT now() NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"max_attempts" integer DEFAULT 5 NOT NULL,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	"completed_by" text,
	"locked_by" text,
	"lease_token" integer DEFAULT 0 NOT NULL,
	CONSTRAINT "orders_status_known" CHECK ("orders"."status" in ('scheduled', 'pending', 'processing', 'completed', 'failed', 'cancelled')),
	CONSTRAINT "orders_currency_iso4217" CHECK ("orders"."currency" ~ '^[A-Z]{3}$'),
	CONSTRAINT "orders_total_nonnegative" CHECK ("orders"."total_cents" >= 0),
	CONSTRAINT "orders_items_nonempty" CHECK (jsonb_typeof("orders"."items") = 'array' and jsonb_array_length("orders"."items") > 0),
	CONSTRAINT "orders_attempts_nonnegative" CHECK ("orders"."attempts" >= 0),
	CONSTRAINT "orders_max_attempts_positive" CHECK ("orders"."max_attempts" >= 1)
);
--> statement-breakpoint
CREATE TABLE "workers" (
	"id" text PRIMARY KEY NOT NULL,
	"host" text NOT NULL,
	"pid" integer NOT NULL,
	"mode" text NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"stopped_at" timestamp with time zone,
	"processed" bigint DEFAULT 0 NOT NULL,
	"failed" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE INDEX "idempotency_keys_created_at_idx" ON "idempotency_keys" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "orders_claim_idx" ON "orders" USING btree ("priority" DESC NULLS FIRST,"run_at","id") WHERE "orders"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "orders_timers_idx" ON "orders" USING btree ("run_at") WHERE "orders"."status" in ('scheduled', 'processing');--> statement-breakpoint
CREATE INDEX "orders_status_id_idx" ON "orders" USING btree ("status","id") WHERE "orders"."status" <> 'completed';