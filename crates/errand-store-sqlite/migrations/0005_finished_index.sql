-- Errand schema v5 (SQLite): an index on finished_at, for what finished in a recent window
-- (queue stats, throughput, durations: `finished_at >= since`) and for the purge
-- (`finished_at < cut-off`). Partial: queued and running rows, the ones the claim works on,
-- are not in it; a job enters it once, when it finishes.
CREATE INDEX errand_jobs_finished ON errand_jobs (finished_at) WHERE finished_at IS NOT NULL;
