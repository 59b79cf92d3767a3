-- Errand schema v2 (SQLite): the registry of worker processes.
-- Same columns as on PostgreSQL. Times are INTEGER microseconds since the Unix epoch (UTC);
-- `queues` is a JSON array of {"name": ..., "concurrency": ...} objects, as TEXT.
-- A handful of rows (one per live worker process): no index beyond the primary key.

CREATE TABLE errand_workers (
    id           TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    version      TEXT    NOT NULL,
    queues       TEXT    NOT NULL CHECK (json_type(queues) = 'array'),
    started_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
