//! The [`Store`] trait implementation: each operation delegates to the module that holds its
//! SQL (`enqueue`, `worker_path`, `ops`, `schedules`, `reads`, `workers`, `migrate`); `subscribe` to `notify`.

use crate::PgStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use errand_core::{ClaimedJob, Event, Fence, Job, JobId, JobInsert, NewEvent, QueueLimits, RunAt};
use errand_store::StoreTuning;
use errand_store::{
    Ack, Backend, CancelOutcome, Enqueued, FinishedStats, JobClaim, JobComplete, JobFail,
    JobFinishedStats, JobHeartbeat, JobList, JobPage, JobProgress, JobPurge, JobRescue,
    JobThroughput, JobsReady, LeaseState, MigrationStatus, QueueInfo, QueueStats, RetryFailed,
    RetryOutcome, Store, StoreError, StoreResult, ThroughputBucket, WorkerRecord,
    WorkerRegistration,
};
use errand_store::{
    DueSchedules, FireOutcome, FireRecord, ScheduleFire, ScheduleFireList, ScheduleRecord,
    ScheduleWrite,
};

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn tuning(&self) -> StoreTuning {
        // Many connections: overlapping round trips (and commits) is what scales.
        StoreTuning {
            claims_in_flight: 4,
            completions_in_flight: 4,
        }
    }

    async fn migrate(&self) -> StoreResult<MigrationStatus> {
        self.migrate_impl().await
    }

    async fn migration_status(&self) -> StoreResult<MigrationStatus> {
        self.migration_status_impl().await
    }

    fn write_problem(&self) -> Option<String> {
        // A full disk is the server's to report (SQLSTATE 53100, mapped to `DiskFull` on the
        // write that hit it); this process keeps no state about it.
        None
    }

    async fn backup(&self, _to: &std::path::Path) -> StoreResult<errand_store::BackupReport> {
        Err(StoreError::Unsupported(
            "errand backup copies SQLite databases only; back PostgreSQL up with its own tools: \
             `pg_dump --format=custom --schema=<schema> <database>` for a logical copy, or \
             `pg_basebackup` for the whole server"
                .into(),
        ))
    }

    async fn job_insert_many(&self, jobs: &[JobInsert]) -> StoreResult<Vec<Enqueued>> {
        let out = self.insert_many(jobs).await?;
        // A job placed at an explicit time already past may be ready behind where its queue's
        // claims continue: the next claim of that queue starts from the head. (A job due later
        // is never behind: a cursor only reaches jobs that were ready when it was claimed.)
        let now = self.now().unwrap_or_else(Utc::now);
        let behind = |j: &&JobInsert| matches!(j.run_at, RunAt::At(at) if at <= now);
        for job in jobs.iter().filter(behind) {
            self.cursors.forget(&job.queue);
        }
        // A keyed job is claimed only the limited way: its queue's next claim here goes so.
        for job in jobs.iter().filter(|j| j.concurrency_key.is_some()) {
            self.flow.mark(&job.queue);
        }
        Ok(out)
    }

    async fn job_claim(&self, claim: &JobClaim) -> StoreResult<Vec<ClaimedJob>> {
        self.claim_impl(claim).await
    }

    async fn job_complete_many(&self, items: &[JobComplete]) -> StoreResult<Vec<Ack>> {
        self.complete_many_impl(items).await
    }

    async fn job_fail(&self, fail: &JobFail) -> StoreResult<Job> {
        self.fail_impl(fail).await
    }

    async fn job_heartbeat_many(&self, beat: &JobHeartbeat) -> StoreResult<Vec<LeaseState>> {
        self.heartbeat_many_impl(beat).await
    }

    async fn job_progress(&self, progress: &JobProgress) -> StoreResult<Ack> {
        self.progress_impl(progress).await
    }

    async fn job_cancel_ack(&self, fence: &Fence, message: Option<&str>) -> StoreResult<Job> {
        self.cancel_ack_impl(fence, message).await
    }

    async fn job_release_many(&self, fences: &[Fence]) -> StoreResult<Vec<Ack>> {
        self.release_many_impl(fences).await
    }

    async fn job_list_stuck(&self, limit: u32) -> StoreResult<Vec<Job>> {
        self.list_stuck_impl(limit).await
    }

    async fn job_rescue_many(&self, items: &[JobRescue]) -> StoreResult<Vec<Ack>> {
        self.rescue_many_impl(items).await
    }

    async fn job_cancel(
        &self,
        ids: &[JobId],
        reason: Option<&str>,
    ) -> StoreResult<Vec<CancelOutcome>> {
        self.cancel_impl(ids, reason).await
    }

    async fn job_retry(&self, ids: &[JobId]) -> StoreResult<Vec<RetryOutcome>> {
        self.retry_impl(ids).await
    }

    async fn job_retry_failed(&self, filter: &RetryFailed) -> StoreResult<u64> {
        self.retry_failed_impl(filter).await
    }

    async fn job_purge(&self, purge: &JobPurge) -> StoreResult<u64> {
        self.purge_impl(purge).await
    }

    async fn job_get(&self, id: JobId) -> StoreResult<Option<Job>> {
        self.get_impl(id).await
    }

    async fn job_list(&self, list: &JobList) -> StoreResult<JobPage> {
        self.list_impl(list).await
    }

    async fn queue_stats(&self) -> StoreResult<Vec<QueueStats>> {
        self.stats_impl().await
    }

    async fn job_finished_stats(
        &self,
        params: &JobFinishedStats,
    ) -> StoreResult<Vec<FinishedStats>> {
        self.finished_stats_impl(params).await
    }

    async fn job_throughput(&self, params: &JobThroughput) -> StoreResult<Vec<ThroughputBucket>> {
        self.throughput_impl(params).await
    }

    async fn event_insert(&self, event: &NewEvent) -> StoreResult<Event> {
        self.event_insert_impl(event).await
    }

    async fn event_list(&self, job_id: JobId) -> StoreResult<Vec<Event>> {
        self.event_list_impl(job_id).await
    }

    async fn queue_pause(&self, name: &str) -> StoreResult<()> {
        self.queue_pause_impl(name).await
    }

    async fn queue_resume(&self, name: &str) -> StoreResult<()> {
        self.queue_resume_impl(name).await
    }

    async fn queue_list(&self) -> StoreResult<Vec<QueueInfo>> {
        self.queue_list_impl().await
    }

    async fn queue_limits_set(&self, name: &str, limits: QueueLimits) -> StoreResult<()> {
        self.queue_limits_set_impl(name, limits).await?;
        if limits.limits_the_queue() {
            self.flow.mark(name);
        } else {
            self.flow.forget(name);
        }
        Ok(())
    }

    async fn worker_register(&self, worker: &WorkerRegistration) -> StoreResult<()> {
        self.worker_register_impl(worker).await
    }

    async fn worker_heartbeat(&self, id: &str) -> StoreResult<bool> {
        self.worker_heartbeat_impl(id).await
    }

    async fn worker_list(&self) -> StoreResult<Vec<WorkerRecord>> {
        self.worker_list_impl().await
    }

    async fn worker_remove(&self, id: &str) -> StoreResult<()> {
        self.worker_remove_impl(id).await
    }

    async fn worker_prune(&self, last_seen_before: DateTime<Utc>) -> StoreResult<u64> {
        self.worker_prune_impl(last_seen_before).await
    }

    async fn schedule_create(&self, schedule: &ScheduleWrite) -> StoreResult<ScheduleRecord> {
        self.schedule_create_impl(schedule).await
    }

    async fn schedule_update(&self, schedule: &ScheduleWrite) -> StoreResult<ScheduleRecord> {
        self.schedule_update_impl(schedule).await
    }

    async fn schedule_delete(&self, name: &str) -> StoreResult<bool> {
        self.schedule_delete_impl(name).await
    }

    async fn schedule_get(&self, name: &str) -> StoreResult<Option<ScheduleRecord>> {
        self.schedule_get_impl(name).await
    }

    async fn schedule_list(&self) -> StoreResult<Vec<ScheduleRecord>> {
        self.schedule_list_impl().await
    }

    async fn schedule_pause(&self, name: &str) -> StoreResult<ScheduleRecord> {
        self.schedule_set_paused_impl(name, true).await
    }

    async fn schedule_resume(&self, name: &str) -> StoreResult<ScheduleRecord> {
        self.schedule_set_paused_impl(name, false).await
    }

    async fn schedule_list_due(&self, limit: u32) -> StoreResult<DueSchedules> {
        self.schedule_list_due_impl(limit).await
    }

    async fn schedule_fire(&self, fire: &ScheduleFire) -> StoreResult<FireOutcome> {
        self.schedule_fire_impl(fire).await
    }

    async fn schedule_trigger(&self, name: &str, job: &JobInsert) -> StoreResult<Enqueued> {
        self.schedule_trigger_impl(name, job).await
    }

    async fn schedule_fire_list(&self, list: &ScheduleFireList) -> StoreResult<Vec<FireRecord>> {
        self.schedule_fire_list_impl(list).await
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<JobsReady> {
        self.wake.subscribe(self)
    }
}
