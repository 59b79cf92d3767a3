-- Errand schema v4 (PostgreSQL): schedules and their fire records (the scheduler, issue 4).
-- `spec` is the schedule as written, kept whole; the columns beside it are the ones queried.

CREATE TABLE errand_schedules (
    name         text        PRIMARY KEY,
    spec         jsonb       NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
    kind         text        NOT NULL,
    queue        text        NOT NULL,
    paused       boolean     NOT NULL DEFAULT false,
    source       text        NOT NULL CHECK (source IN ('config', 'api')),
    -- The latest fire handled (enqueued or skipped), or the creation/resume time: the
    -- compare of the scheduler's compare-and-set.
    last_fire_at timestamptz NOT NULL,
    -- When the scheduler looks at the schedule next.
    due_at       timestamptz NOT NULL,
    -- The job of the latest run (fire or trigger), for the overlap policy. No foreign key:
    -- purging jobs must not touch schedules.
    last_job_id  bigint,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- The scheduler's "what is due" and "when to look next": only unpaused rows.
CREATE INDEX errand_schedules_due ON errand_schedules (due_at) WHERE NOT paused;

CREATE TABLE errand_schedule_fires (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule    text        NOT NULL REFERENCES errand_schedules (name) ON DELETE CASCADE,
    fire_at     timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    outcome     text        NOT NULL CHECK (outcome IN ('enqueued', 'skipped', 'triggered')),
    -- Why a fire was skipped: missed_beyond_grace, coalesced, overlap_skipped.
    reason      text,
    job_id      bigint
);

-- A schedule's history, newest first, and trimming it to the newest rows.
CREATE INDEX errand_schedule_fires_schedule ON errand_schedule_fires (schedule, id);
