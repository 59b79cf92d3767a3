-- Errand schema v8 (SQLite): fewer index entries per job.
--
-- SQLite rewrites an index entry when a column the index holds (or its WHERE names) changes,
-- and `status` changes at every step of a job's life. With v1-v7 `errand_jobs_status_id` and
-- `errand_jobs_queue_status` were rewritten at the enqueue, the claim and the success; now
-- they hold only the rows an operator lists through them. Running rows are few and all in
-- errand_jobs_lease; succeeded rows are most of the history and are found newest-first along
-- the rowid. An enqueue writes one index page fewer, which is most of what a single enqueue's
-- commit costs on this disk (1.66 -> 1.27 ms median, measured before the change).
--
-- SQLite uses a partial index only when the query repeats the index's WHERE term, so the
-- list query adds the term to the state it asks for (see `reads.rs`).
DROP INDEX errand_jobs_status_id;
CREATE INDEX errand_jobs_status_id ON errand_jobs (status, id)
    WHERE status NOT IN ('running', 'succeeded');

DROP INDEX errand_jobs_queue_status;
CREATE INDEX errand_jobs_queue_status ON errand_jobs (queue, status, id)
    WHERE status NOT IN ('queued', 'running', 'succeeded');
