-- Errand schema v12 (PostgreSQL): flow control (errand_core::flow).
--
-- A job may carry a `concurrency_key` and its own `key_concurrency`; a queue may carry a
-- `global_concurrency` and a default `key_concurrency`. Nullable columns without a default:
-- adding them rewrites no row.
--
-- The claim index now holds only jobs without a key, so the plain claim (every queue without
-- limits) never reads a keyed job. Keyed jobs have their own index, ordered by key first, so
-- a claim can visit each key's first ready jobs (one descent per key) instead of walking a
-- backlog of one busy key to reach the others. Running keyed jobs are indexed by key for the
-- per-key counts; unkeyed jobs are not entered there, so the hot path pays nothing for it.
ALTER TABLE errand_jobs
    ADD COLUMN concurrency_key text,
    ADD COLUMN key_concurrency integer CHECK (key_concurrency >= 1);

ALTER TABLE errand_queues
    ADD COLUMN global_concurrency integer CHECK (global_concurrency >= 1),
    ADD COLUMN key_concurrency integer CHECK (key_concurrency >= 1);

DROP INDEX errand_jobs_claim;
CREATE INDEX errand_jobs_claim ON errand_jobs (queue, priority DESC, run_at, id)
    WHERE status = 'queued' AND concurrency_key IS NULL;

CREATE INDEX errand_jobs_claim_keyed ON errand_jobs (queue, concurrency_key, priority DESC, run_at, id)
    WHERE status = 'queued' AND concurrency_key IS NOT NULL;

CREATE INDEX errand_jobs_running_keyed ON errand_jobs (queue, concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;
