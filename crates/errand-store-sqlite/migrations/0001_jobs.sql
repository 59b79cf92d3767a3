-- Errand schema v1 (SQLite): jobs, their events, queue settings.
-- Times are INTEGER microseconds since the Unix epoch, UTC: compact, and they sort and
-- compare exactly in the claim index. JSON columns are TEXT holding compact JSON.

CREATE TABLE errand_jobs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: ids are never reused after a purge
    queue               TEXT    NOT NULL DEFAULT 'default',
    kind                TEXT    NOT NULL,
    args                TEXT    NOT NULL DEFAULT '{}',
    status              TEXT    NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority            INTEGER NOT NULL DEFAULT 0,
    run_at              INTEGER NOT NULL,
    attempt             INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL DEFAULT 4 CHECK (max_attempts >= 1),
    unique_key          TEXT,
    reference_type      TEXT,
    reference_id        TEXT,
    result              TEXT,
    last_error          TEXT,
    timeout_ms          INTEGER,
    worker_id           TEXT,
    lease_expires_at    INTEGER,
    cancel_requested_at INTEGER,
    created_at          INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER,
    updated_at          INTEGER NOT NULL
);

-- Same index plan as PostgreSQL; see ARCHITECTURE.md.
CREATE INDEX errand_jobs_claim ON errand_jobs (queue, priority DESC, run_at, id)
    WHERE status = 'queued';
CREATE UNIQUE INDEX errand_jobs_unique_live ON errand_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running');
CREATE INDEX errand_jobs_lease ON errand_jobs (lease_expires_at)
    WHERE status = 'running';
CREATE INDEX errand_jobs_status_id ON errand_jobs (status, id);
CREATE INDEX errand_jobs_queue_status ON errand_jobs (queue, status);
CREATE INDEX errand_jobs_kind_id ON errand_jobs (kind, id);
CREATE INDEX errand_jobs_reference ON errand_jobs (reference_type, reference_id)
    WHERE reference_type IS NOT NULL;

CREATE TABLE errand_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     INTEGER NOT NULL REFERENCES errand_jobs (id) ON DELETE CASCADE,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    attempt    INTEGER NOT NULL,
    worker_id  TEXT,
    message    TEXT,
    data       TEXT
);
CREATE INDEX errand_events_job ON errand_events (job_id, id);

CREATE TABLE errand_queues (
    name       TEXT PRIMARY KEY,
    paused_at  INTEGER,
    updated_at INTEGER NOT NULL
);
