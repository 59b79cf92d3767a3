-- Errand schema v8 (PostgreSQL): fewer index entries per job, and a cheaper count trigger.
--
-- A claim and a completion each rewrite the job's row, and since both change `status`, the
-- new row version is entered in every index whose predicate it meets. With v1-v7 that was
-- five indexes at each step, ten entries per job where a bare queue table writes two; the
-- index work was most of what made a drain slower than a minimal loop. Now three and three. Index
-- maintenance, measured with pgbench on the claim and completion statements, was the whole
-- of the gap: with no operator indexes the statements ran within 7% of the bare table.
--
-- The status indexes now leave out the rows that other paths find anyway:
-- - `running` rows are few (at most the workers' total concurrency) and are all in
--   errand_jobs_lease;
-- - `succeeded` rows are the bulk of the history. Listing them by status or queue walks the
--   primary key from the newest, where they are the common case.
-- errand_jobs_kind_id keeps every row: listing a kind across states must walk one index in id
-- order, and a branch for running rows beside it read every running row's page (100 ms with
-- 10,000 running at 1,000,000 jobs). A claim enters its row in pkey, lease and kind_id; a
-- success in pkey, kind_id and finished.
--
-- The store's list query writes the state as a literal (see `reads.rs`) so that its plan can
-- use these partial indexes.
DROP INDEX errand_jobs_status_id;
CREATE INDEX errand_jobs_status_id ON errand_jobs (status, id)
    WHERE status NOT IN ('running', 'succeeded');

DROP INDEX errand_jobs_queue_status;
CREATE INDEX errand_jobs_queue_status ON errand_jobs (queue, status, id)
    WHERE status NOT IN ('queued', 'running', 'succeeded');

-- An UPDATE's transition tables hold the same rows before and after, so its net change per
-- (queue, status) is the rows counted after minus the rows counted before: no join needed.
CREATE OR REPLACE FUNCTION errand_jobs_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO errand_queue_count_deltas (queue, status, n)
        SELECT queue, status, sum(n) FROM (
            SELECT queue, status, -1 AS n FROM errand_old_rows
            UNION ALL
            SELECT queue, status, 1 FROM errand_new_rows
        ) d
        GROUP BY queue, status
        HAVING sum(n) <> 0;
    RETURN NULL;
END $$;
