-- Errand schema v13 (PostgreSQL): a queue's rate limit (errand_core::flow::RateLimit): at most
-- `rate_limit` starts in any window of `rate_window_ms` milliseconds.
--
-- The starts of rate-limited queues are logged, one row per job started, by the limited claim
-- (which holds the queue's claim lock), and each such claim first deletes the rows older than
-- the window, so the log holds at most one window's worth per queue. Counting that log is a
-- sliding window: no 2x burst at a calendar boundary. Queues without a rate limit log nothing.
ALTER TABLE errand_queues
    ADD COLUMN rate_limit integer CHECK (rate_limit >= 1),
    ADD COLUMN rate_window_ms bigint CHECK (rate_window_ms >= 1);

CREATE TABLE errand_queue_starts (
    queue text        NOT NULL,
    at    timestamptz NOT NULL
);
CREATE INDEX errand_queue_starts_queue_at ON errand_queue_starts (queue, at);
