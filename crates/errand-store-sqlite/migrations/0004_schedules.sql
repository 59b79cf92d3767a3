-- Errand schema v4 (SQLite): schedules and their fire records (the scheduler, issue 4).
-- Same columns as on PostgreSQL. Times are INTEGER microseconds since the Unix epoch (UTC);
-- `spec` is the schedule as written (JSON text), kept whole; the columns beside it are the
-- ones queried. Migration 3 exists on PostgreSQL only (a claim-plan index fix).

CREATE TABLE errand_schedules (
    name         TEXT    PRIMARY KEY,
    spec         TEXT    NOT NULL CHECK (json_type(spec) = 'object'),
    kind         TEXT    NOT NULL,
    queue        TEXT    NOT NULL,
    paused       INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    source       TEXT    NOT NULL CHECK (source IN ('config', 'api')),
    -- The latest fire handled (enqueued or skipped), or the creation/resume time: the
    -- compare of the scheduler's compare-and-set.
    last_fire_at INTEGER NOT NULL,
    -- When the scheduler looks at the schedule next.
    due_at       INTEGER NOT NULL,
    -- The job of the latest run (fire or trigger), for the overlap policy. No foreign key:
    -- purging jobs must not touch schedules.
    last_job_id  INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- The scheduler's "what is due" and "when to look next": only unpaused rows.
CREATE INDEX errand_schedules_due ON errand_schedules (due_at) WHERE paused = 0;

CREATE TABLE errand_schedule_fires (
    id          INTEGER PRIMARY KEY,
    schedule    TEXT    NOT NULL REFERENCES errand_schedules (name) ON DELETE CASCADE,
    fire_at     INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('enqueued', 'skipped', 'triggered')),
    -- Why a fire was skipped: missed_beyond_grace, coalesced, overlap_skipped.
    reason      TEXT,
    job_id      INTEGER
);

-- A schedule's history, newest first, and trimming it to the newest rows.
CREATE INDEX errand_schedule_fires_schedule ON errand_schedule_fires (schedule, id);
