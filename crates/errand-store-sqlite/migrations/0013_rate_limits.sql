-- Errand schema v13 (SQLite): a queue's rate limit, as PostgreSQL's migration 13: the two
-- columns, and the log of the starts of rate-limited queues (one row per job started, rows
-- older than the window deleted by the next claim), counted as a sliding window.
ALTER TABLE errand_queues ADD COLUMN rate_limit INTEGER CHECK (rate_limit >= 1);
ALTER TABLE errand_queues ADD COLUMN rate_window_ms INTEGER CHECK (rate_window_ms >= 1);

CREATE TABLE errand_queue_starts (
    queue TEXT    NOT NULL,
    at    INTEGER NOT NULL
);
CREATE INDEX errand_queue_starts_queue_at ON errand_queue_starts (queue, at);
