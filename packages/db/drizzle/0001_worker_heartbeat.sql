-- Each worker records its own heartbeat interval, so whether it is gone is judged by it (listWorkers).
ALTER TABLE "workers" ADD COLUMN "heartbeat_ms" integer DEFAULT 5000 NOT NULL;