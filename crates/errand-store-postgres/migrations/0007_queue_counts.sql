-- Errand schema v7 (PostgreSQL): per-queue counts by status, kept by statement triggers, so
-- queue statistics read a handful of rows instead of counting every job (counting 1,000,000
-- jobs took 370-950 ms; the dashboard's overview asks every few seconds).
--
-- Writers never wait on each other for this: each INSERT/UPDATE/DELETE statement on
-- errand_jobs appends one row per (queue, status) it changed to errand_queue_count_deltas
-- (an insert, no hot row to lock; one row per statement, not per job, through transition
-- tables). Readers add the deltas to errand_queue_counts and fold them in now and then
-- (`queue_stats` moves them with one DELETE ... RETURNING, so concurrent folds never count
-- a delta twice). Deltas commit or roll back with the statement that made them.

CREATE TABLE errand_queue_counts (
    queue  text   NOT NULL,
    status text   NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (queue, status)
);

CREATE TABLE errand_queue_count_deltas (
    id     bigserial PRIMARY KEY,
    queue  text   NOT NULL,
    status text   NOT NULL,
    n      bigint NOT NULL
);

INSERT INTO errand_queue_counts (queue, status, n)
    SELECT queue, status, count(*) FROM errand_jobs GROUP BY queue, status;

CREATE FUNCTION errand_jobs_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO errand_queue_count_deltas (queue, status, n)
        SELECT queue, status, count(*) FROM errand_new_rows GROUP BY queue, status;
    RETURN NULL;
END $$;

CREATE FUNCTION errand_jobs_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO errand_queue_count_deltas (queue, status, n)
        SELECT queue, status, -count(*) FROM errand_old_rows GROUP BY queue, status;
    RETURN NULL;
END $$;

CREATE FUNCTION errand_jobs_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO errand_queue_count_deltas (queue, status, n)
        SELECT queue, status, sum(n) FROM (
            SELECT o.queue, o.status, -1 AS n
            FROM errand_old_rows o JOIN errand_new_rows w ON w.id = o.id
            WHERE o.status <> w.status OR o.queue <> w.queue
            UNION ALL
            SELECT w.queue, w.status, 1
            FROM errand_old_rows o JOIN errand_new_rows w ON w.id = o.id
            WHERE o.status <> w.status OR o.queue <> w.queue
        ) d
        GROUP BY queue, status
        HAVING sum(n) <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER errand_jobs_count_insert AFTER INSERT ON errand_jobs
    REFERENCING NEW TABLE AS errand_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION errand_jobs_count_inserted();

CREATE TRIGGER errand_jobs_count_update AFTER UPDATE ON errand_jobs
    REFERENCING OLD TABLE AS errand_old_rows NEW TABLE AS errand_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION errand_jobs_count_updated();

CREATE TRIGGER errand_jobs_count_delete AFTER DELETE ON errand_jobs
    REFERENCING OLD TABLE AS errand_old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION errand_jobs_count_deleted();
