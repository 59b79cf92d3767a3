-- Errand schema v7 (SQLite): per-queue counts by status, kept by triggers, so queue
-- statistics read a handful of rows instead of counting every job (a COUNT(*) GROUP BY over
-- 1,000,000 jobs took 300-500 ms; the dashboard's overview asks every few seconds).
-- SQLite has one writer at a time, so the counter rows add no contention; each status
-- change updates two of them in the same transaction as the job, so they are exact.

CREATE TABLE errand_queue_counts (
    queue  TEXT    NOT NULL,
    status TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (queue, status)
) WITHOUT ROWID;

INSERT INTO errand_queue_counts (queue, status, n)
    SELECT queue, status, COUNT(*) FROM errand_jobs GROUP BY queue, status;

CREATE TRIGGER errand_jobs_count_insert AFTER INSERT ON errand_jobs
BEGIN
    INSERT INTO errand_queue_counts (queue, status, n) VALUES (NEW.queue, NEW.status, 1)
        ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER errand_jobs_count_update AFTER UPDATE OF queue, status ON errand_jobs
    WHEN OLD.status IS NOT NEW.status OR OLD.queue IS NOT NEW.queue
BEGIN
    UPDATE errand_queue_counts SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status;
    INSERT INTO errand_queue_counts (queue, status, n) VALUES (NEW.queue, NEW.status, 1)
        ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER errand_jobs_count_delete AFTER DELETE ON errand_jobs
BEGIN
    UPDATE errand_queue_counts SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status;
END;
