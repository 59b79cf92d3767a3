//! A [`Store`] that counts the calls and batch sizes of the worker path (claims, completes,
//! heartbeats) and times the claims and completes, delegating everything to the store it
//! wraps: it shows how the worker pool batches its work during a benchmark.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use errand_core::{ClaimedJob, Event, Fence, Job, JobId, JobInsert, NewEvent};
use errand_store::StoreTuning;
use errand_store::{
    Ack, Backend, CancelOutcome, Enqueued, FinishedStats, JobClaim, JobComplete, JobFail,
    JobFinishedStats, JobHeartbeat, JobList, JobPage, JobProgress, JobPurge, JobRescue,
    JobThroughput, JobsReady, LeaseState, MigrationStatus, QueueInfo, QueueStats, RetryFailed,
    RetryOutcome, Store, StoreResult, ThroughputBucket, WorkerRecord, WorkerRegistration,
};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Default)]
pub struct Counts {
    pub claims: AtomicU64,
    pub claimed: AtomicU64,
    pub empty_claims: AtomicU64,
    pub completes: AtomicU64,
    pub completed: AtomicU64,
    pub heartbeats: AtomicU64,
    /// Time spent inside `job_claim` / `job_complete_many`, in microseconds.
    pub claim_us: AtomicU64,
    pub complete_us: AtomicU64,
}

impl Counts {
    /// One line: claims and their mean size, completes and their mean size.
    pub fn summary(&self) -> String {
        let mean = |n: &AtomicU64, calls: &AtomicU64| {
            n.load(Relaxed) as f64 / calls.load(Relaxed).max(1) as f64
        };
        format!(
            "{} claims ({} empty, {:.1} jobs each, {:.2} ms each), {} complete batches ({:.1} jobs each, {:.2} ms each), {} heartbeats",
            self.claims.load(Relaxed),
            self.empty_claims.load(Relaxed),
            mean(&self.claimed, &self.claims),
            mean(&self.claim_us, &self.claims) / 1000.0,
            self.completes.load(Relaxed),
            mean(&self.completed, &self.completes),
            mean(&self.complete_us, &self.completes) / 1000.0,
            self.heartbeats.load(Relaxed),
        )
    }
}

#[derive(Debug)]
pub struct Counting {
    pub inner: Arc<dyn Store>,
    pub counts: Arc<Counts>,
}

#[async_trait]
impl Store for Counting {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }
    fn tuning(&self) -> StoreTuning {
        self.inner.tuning()
    }
    async fn migrate(&self) -> StoreResult<MigrationStatus> {
        self.inner.migrate().await
    }
    async fn migration_status(&self) -> StoreResult<MigrationStatus> {
        self.inner.migration_status().await
    }
    fn write_problem(&self) -> Option<String> {
        self.inner.write_problem()
    }
    async fn backup(&self, to: &std::path::Path) -> StoreResult<errand_store::BackupReport> {
        self.inner.backup(to).await
    }
    async fn job_insert_many(&self, jobs: &[JobInsert]) -> StoreResult<Vec<Enqueued>> {
        self.inner.job_insert_many(jobs).await
    }
    async fn job_claim(&self, claim: &JobClaim) -> StoreResult<Vec<ClaimedJob>> {
        let t = Instant::now();
        let jobs = self.inner.job_claim(claim).await?;
        let us = t.elapsed().as_micros() as u64;
        self.counts.claim_us.fetch_add(us, Relaxed);
        self.counts.claims.fetch_add(1, Relaxed);
        self.counts.claimed.fetch_add(jobs.len() as u64, Relaxed);
        if jobs.is_empty() {
            self.counts.empty_claims.fetch_add(1, Relaxed);
        }
        Ok(jobs)
    }
    async fn job_complete_many(&self, items: &[JobComplete]) -> StoreResult<Vec<Ack>> {
        self.counts.completes.fetch_add(1, Relaxed);
        self.counts.completed.fetch_add(items.len() as u64, Relaxed);
        let t = Instant::now();
        let acks = self.inner.job_complete_many(items).await;
        let us = t.elapsed().as_micros() as u64;
        self.counts.complete_us.fetch_add(us, Relaxed);
        acks
    }
    async fn job_fail(&self, fail: &JobFail) -> StoreResult<Job> {
        self.inner.job_fail(fail).await
    }
    async fn job_heartbeat_many(&self, beat: &JobHeartbeat) -> StoreResult<Vec<LeaseState>> {
        self.counts.heartbeats.fetch_add(1, Relaxed);
        self.inner.job_heartbeat_many(beat).await
    }
    async fn job_progress(&self, progress: &JobProgress) -> StoreResult<Ack> {
        self.inner.job_progress(progress).await
    }
    async fn job_cancel_ack(&self, fence: &Fence, message: Option<&str>) -> StoreResult<Job> {
        self.inner.job_cancel_ack(fence, message).await
    }
    async fn job_release_many(&self, fences: &[Fence]) -> StoreResult<Vec<Ack>> {
        self.inner.job_release_many(fences).await
    }
    async fn job_list_stuck(&self, limit: u32) -> StoreResult<Vec<Job>> {
        self.inner.job_list_stuck(limit).await
    }
    async fn job_rescue_many(&self, items: &[JobRescue]) -> StoreResult<Vec<Ack>> {
        self.inner.job_rescue_many(items).await
    }
    async fn job_cancel(
        &self,
        ids: &[JobId],
        reason: Option<&str>,
    ) -> StoreResult<Vec<CancelOutcome>> {
        self.inner.job_cancel(ids, reason).await
    }
    async fn job_retry(&self, ids: &[JobId]) -> StoreResult<Vec<RetryOutcome>> {
        self.inner.job_retry(ids).await
    }
    async fn job_retry_failed(&self, filter: &RetryFailed) -> StoreResult<u64> {
        self.inner.job_retry_failed(filter).await
    }
    async fn job_purge(&self, purge: &JobPurge) -> StoreResult<u64> {
        self.inner.job_purge(purge).await
    }
    async fn job_get(&self, id: JobId) -> StoreResult<Option<Job>> {
        self.inner.job_get(id).await
    }
    async fn job_list(&self, list: &JobList) -> StoreResult<JobPage> {
        self.inner.job_list(list).await
    }
    async fn queue_stats(&self) -> StoreResult<Vec<QueueStats>> {
        self.inner.queue_stats().await
    }
    async fn job_finished_stats(
        &self,
        params: &JobFinishedStats,
    ) -> StoreResult<Vec<FinishedStats>> {
        self.inner.job_finished_stats(params).await
    }
    async fn job_throughput(&self, params: &JobThroughput) -> StoreResult<Vec<ThroughputBucket>> {
        self.inner.job_throughput(params).await
    }
    async fn event_insert(&self, event: &NewEvent) -> StoreResult<Event> {
        self.inner.event_insert(event).await
    }
    async fn event_list(&self, job_id: JobId) -> StoreResult<Vec<Event>> {
        self.inner.event_list(job_id).await
    }
    async fn queue_pause(&self, name: &str) -> StoreResult<()> {
        self.inner.queue_pause(name).await
    }
    async fn queue_resume(&self, name: &str) -> StoreResult<()> {
        self.inner.queue_resume(name).await
    }
    async fn queue_limits_set(&self, name: &str, limits: errand::QueueLimits) -> StoreResult<()> {
        self.inner.queue_limits_set(name, limits).await
    }

    async fn queue_list(&self) -> StoreResult<Vec<QueueInfo>> {
        self.inner.queue_list().await
    }
    async fn worker_register(&self, worker: &WorkerRegistration) -> StoreResult<()> {
        self.inner.worker_register(worker).await
    }
    async fn worker_heartbeat(&self, id: &str) -> StoreResult<bool> {
        self.inner.worker_heartbeat(id).await
    }
    async fn worker_list(&self) -> StoreResult<Vec<WorkerRecord>> {
        self.inner.worker_list().await
    }
    async fn worker_remove(&self, id: &str) -> StoreResult<()> {
        self.inner.worker_remove(id).await
    }
    async fn worker_prune(&self, last_seen_before: DateTime<Utc>) -> StoreResult<u64> {
        self.inner.worker_prune(last_seen_before).await
    }
    async fn schedule_create(
        &self,
        s: &errand_store::ScheduleWrite,
    ) -> StoreResult<errand_store::ScheduleRecord> {
        self.inner.schedule_create(s).await
    }
    async fn schedule_update(
        &self,
        s: &errand_store::ScheduleWrite,
    ) -> StoreResult<errand_store::ScheduleRecord> {
        self.inner.schedule_update(s).await
    }
    async fn schedule_delete(&self, name: &str) -> StoreResult<bool> {
        self.inner.schedule_delete(name).await
    }
    async fn schedule_get(&self, name: &str) -> StoreResult<Option<errand_store::ScheduleRecord>> {
        self.inner.schedule_get(name).await
    }
    async fn schedule_list(&self) -> StoreResult<Vec<errand_store::ScheduleRecord>> {
        self.inner.schedule_list().await
    }
    async fn schedule_pause(&self, name: &str) -> StoreResult<errand_store::ScheduleRecord> {
        self.inner.schedule_pause(name).await
    }
    async fn schedule_resume(&self, name: &str) -> StoreResult<errand_store::ScheduleRecord> {
        self.inner.schedule_resume(name).await
    }
    async fn schedule_list_due(&self, limit: u32) -> StoreResult<errand_store::DueSchedules> {
        self.inner.schedule_list_due(limit).await
    }
    async fn schedule_fire(
        &self,
        f: &errand_store::ScheduleFire,
    ) -> StoreResult<errand_store::FireOutcome> {
        self.inner.schedule_fire(f).await
    }
    async fn schedule_trigger(&self, name: &str, job: &JobInsert) -> StoreResult<Enqueued> {
        self.inner.schedule_trigger(name, job).await
    }
    async fn schedule_fire_list(
        &self,
        l: &errand_store::ScheduleFireList,
    ) -> StoreResult<Vec<errand_store::FireRecord>> {
        self.inner.schedule_fire_list(l).await
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<JobsReady> {
        self.inner.subscribe()
    }
}
