-- Errand schema v11 (PostgreSQL): a running job's progress report. `progress` is the JSON
-- value the handler last reported (errand_core::Progress: at most 8 KiB of compact JSON),
-- `progress_at` when it was written. A claim clears both (a new attempt starts with none);
-- they stay after the job finishes. Nullable columns without a default: adding them rewrites
-- no row.
ALTER TABLE errand_jobs
    ADD COLUMN progress jsonb,
    ADD COLUMN progress_at timestamptz;
