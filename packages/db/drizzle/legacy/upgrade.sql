-- From the earlier layout (everything in public, at legacy/0003) to the baseline of ../0000, in the
-- queue's own schema (__SCHEMA__, substituted by migrate.ts). Run once, in one transaction, by
-- migrateDatabase when it finds such an install. Stop the workers first: the lease fence moves from
-- attempts to lease_token.

ALTER TABLE public.orders SET SCHEMA __SCHEMA__;
ALTER TABLE public.workers SET SCHEMA __SCHEMA__;
ALTER TABLE public.order_throughput SET SCHEMA __SCHEMA__;

-- Scheduled orders (a delay, a retry's backoff) leave the claim's index; the status is text.
DROP INDEX __SCHEMA__.orders_claim_idx;
DROP INDEX __SCHEMA__.orders_status_id_idx;
ALTER TABLE __SCHEMA__.orders ALTER COLUMN status DROP DEFAULT;
ALTER TABLE __SCHEMA__.orders ALTER COLUMN status SET DATA TYPE text USING (
  CASE WHEN status::text = 'pending' AND run_at > now() THEN 'scheduled' ELSE status::text END);
ALTER TABLE __SCHEMA__.orders ALTER COLUMN status SET DEFAULT 'pending';
DROP TYPE public.order_status;
ALTER TABLE __SCHEMA__.orders ADD CONSTRAINT orders_status_known
  CHECK (status in ('scheduled', 'pending', 'processing', 'completed', 'failed', 'cancelled'));
ALTER TABLE __SCHEMA__.orders ADD COLUMN lease_token integer DEFAULT 0 NOT NULL;
CREATE INDEX orders_claim_idx ON __SCHEMA__.orders USING btree (priority DESC NULLS FIRST, run_at, id)
  WHERE status = 'pending';
CREATE INDEX orders_timers_idx ON __SCHEMA__.orders USING btree (run_at) WHERE status in ('scheduled', 'processing');
CREATE INDEX orders_status_id_idx ON __SCHEMA__.orders USING btree (status, id) WHERE status <> 'completed';

-- Idempotency-Keys move to a table of their own, so retention can delete an order without
-- forgetting its key.
CREATE TABLE __SCHEMA__.idempotency_keys (
  key text PRIMARY KEY NOT NULL,
  request_hash text NOT NULL,
  order_ids bigint[] NOT NULL,
  created_at timestamp with time zone DEFAULT now() NOT NULL
);
CREATE INDEX idempotency_keys_created_at_idx ON __SCHEMA__.idempotency_keys USING btree (created_at);
INSERT INTO __SCHEMA__.idempotency_keys (key, request_hash, order_ids, created_at)
  SELECT idempotency_key, coalesce(request_hash, ''), ARRAY[id], created_at FROM __SCHEMA__.orders
  WHERE idempotency_key IS NOT NULL;
DROP INDEX __SCHEMA__.orders_idempotency_key_idx;
ALTER TABLE __SCHEMA__.orders DROP COLUMN idempotency_key;
ALTER TABLE __SCHEMA__.orders DROP COLUMN request_hash;
