-- Errand schema v3 (PostgreSQL): no index but errand_jobs_claim can serve the claim.
--
-- Before the table has statistics (a new deployment, before autovacuum's first ANALYZE) the
-- planner estimates `queue = $1 AND status = 'queued'` at one row. Reading those "few" rows
-- from the (queue, status) index and sorting them then looks as cheap as walking
-- errand_jobs_claim in claim order, and it won the tie: with a backlog of N jobs every claim
-- read and sorted all N queued rows (50,000 queued: ~50 ms per claim, a sort spilling to
-- disk). Without queued rows in (queue, status), walking errand_jobs_claim is the only
-- cheap plan whatever the statistics say. Queue stats count queued rows from
-- errand_jobs_claim instead.
DROP INDEX errand_jobs_queue_status;
CREATE INDEX errand_jobs_queue_status ON errand_jobs (queue, status) WHERE status <> 'queued';
