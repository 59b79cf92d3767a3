-- Errand schema v11 (SQLite): a running job's progress report. `progress` is the JSON text
-- the handler last reported (errand_core::Progress: at most 8 KiB of compact JSON),
-- `progress_at` when it was written (integer microseconds since the epoch, UTC). A claim
-- clears both (a new attempt starts with none); they stay after the job finishes.
ALTER TABLE errand_jobs ADD COLUMN progress TEXT;
ALTER TABLE errand_jobs ADD COLUMN progress_at INTEGER;
