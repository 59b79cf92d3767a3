-- Errand schema v2 (PostgreSQL): the registry of worker processes.
-- Same columns as on SQLite. `queues` is a JSON array of {"name": ..., "concurrency": ...}.
-- A handful of rows (one per live worker process): no index beyond the primary key.

CREATE TABLE errand_workers (
    id           text        PRIMARY KEY,
    host         text        NOT NULL,
    pid          bigint      NOT NULL,
    version      text        NOT NULL,
    queues       jsonb       NOT NULL CHECK (jsonb_typeof(queues) = 'array'),
    started_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);
