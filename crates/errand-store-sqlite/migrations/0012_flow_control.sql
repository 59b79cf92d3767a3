-- Errand schema v12 (SQLite): flow control (errand_core::flow). The same columns and index
-- plan as PostgreSQL's migration 12: the claim index holds only jobs without a key; keyed
-- jobs have their own, key first, so a claim visits each key's first ready jobs; running
-- keyed jobs are indexed by key for the per-key counts. The claim index ends with
-- `concurrency_key` (always NULL in it): SQLite reads an index alone only when it holds every
-- column a query names, and the claim and the queue stats name it to use the index.
ALTER TABLE errand_jobs ADD COLUMN concurrency_key TEXT;
ALTER TABLE errand_jobs ADD COLUMN key_concurrency INTEGER CHECK (key_concurrency >= 1);

ALTER TABLE errand_queues ADD COLUMN global_concurrency INTEGER CHECK (global_concurrency >= 1);
ALTER TABLE errand_queues ADD COLUMN key_concurrency INTEGER CHECK (key_concurrency >= 1);

DROP INDEX errand_jobs_claim;
CREATE INDEX errand_jobs_claim ON errand_jobs (queue, priority DESC, run_at, id, concurrency_key)
    WHERE status = 'queued' AND concurrency_key IS NULL;

CREATE INDEX errand_jobs_claim_keyed ON errand_jobs (queue, concurrency_key, priority DESC, run_at, id)
    WHERE status = 'queued' AND concurrency_key IS NOT NULL;

CREATE INDEX errand_jobs_running_keyed ON errand_jobs (queue, concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;
