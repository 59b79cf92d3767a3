//! The [`Store`] implementation: each operation picks the writer or a reader and hands its
//! (owned) arguments to the SQL in `enqueue`, `worker_path`, `ops`, `schedules`, `reads`, `workers` or `migrate`; the
//! operations that make jobs ready go through `write_waking` (see `notify`).

use crate::{backup, enqueue, migrate, ops, reads, schedules, worker_path, workers, SqliteStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use errand_core::{ClaimedJob, Event, Fence, Job, JobId, JobInsert, NewEvent};
use errand_store::StoreTuning;
use errand_store::{
    Ack, Backend, BackupReport, CancelOutcome, Enqueued, FinishedStats, JobClaim, JobComplete,
    JobFail, JobFinishedStats, JobHeartbeat, JobList, JobPage, JobProgress, JobPurge, JobRescue,
    JobThroughput, JobsReady, LeaseState, MigrationStatus, QueueInfo, QueueStats, RetryFailed,
    RetryOutcome, Store, StoreResult, ThroughputBucket, WorkerRecord, WorkerRegistration,
};
use errand_store::{
    DueSchedules, FireOutcome, FireRecord, ScheduleFire, ScheduleFireList, ScheduleRecord,
    ScheduleWrite,
};

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn tuning(&self) -> StoreTuning {
        // One writer per file, which commits the writes queued together as one group: a
        // second write in flight queues behind the one running and shares the next group's
        // commit with whatever else arrived meanwhile. More would only wait longer.
        StoreTuning {
            claims_in_flight: 2,
            completions_in_flight: 2,
        }
    }

    async fn migrate(&self) -> StoreResult<MigrationStatus> {
        self.with_writer(migrate::migrate).await
    }

    async fn migration_status(&self) -> StoreResult<MigrationStatus> {
        self.read(|tx, _| migrate::status(tx)).await
    }

    fn write_problem(&self) -> Option<String> {
        self.inner.writer.problem()
    }

    async fn backup(&self, to: &std::path::Path) -> StoreResult<BackupReport> {
        let source = self.path().to_path_buf();
        let to = to.to_path_buf();
        crate::run_blocking(move || backup::run(&source, &to)).await
    }

    async fn job_insert_many(&self, jobs: &[JobInsert]) -> StoreResult<Vec<Enqueued>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let jobs = jobs.to_vec();
        self.write_waking(move |tx, now, ready| enqueue::insert_many(tx, now, &jobs, ready))
            .await
    }

    async fn job_claim(&self, claim: &JobClaim) -> StoreResult<Vec<ClaimedJob>> {
        if claim.limit == 0 {
            return Ok(Vec::new());
        }
        let claim = claim.clone();
        self.write(move |tx, now| worker_path::claim(tx, now, &claim))
            .await
    }

    async fn job_complete_many(&self, items: &[JobComplete]) -> StoreResult<Vec<Ack>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let items = items.to_vec();
        self.write_waking(move |tx, now, ready| worker_path::complete_many(tx, now, &items, ready))
            .await
    }

    async fn job_fail(&self, fail: &JobFail) -> StoreResult<Job> {
        let fail = fail.clone();
        self.write_waking(move |tx, now, ready| worker_path::fail(tx, now, &fail, ready))
            .await
    }

    async fn job_heartbeat_many(&self, beat: &JobHeartbeat) -> StoreResult<Vec<LeaseState>> {
        if beat.fences.is_empty() {
            return Ok(Vec::new());
        }
        let beat = beat.clone();
        self.write(move |tx, now| worker_path::heartbeat_many(tx, now, &beat))
            .await
    }

    async fn job_progress(&self, progress: &JobProgress) -> StoreResult<Ack> {
        let progress = progress.clone();
        self.write(move |tx, now| worker_path::progress(tx, now, &progress))
            .await
    }

    async fn job_cancel_ack(&self, fence: &Fence, message: Option<&str>) -> StoreResult<Job> {
        let fence = fence.clone();
        let message = message.map(str::to_owned);
        self.write_waking(move |tx, now, ready| {
            worker_path::cancel_ack(tx, now, &fence, message.as_deref(), ready)
        })
        .await
    }

    async fn job_release_many(&self, fences: &[Fence]) -> StoreResult<Vec<Ack>> {
        if fences.is_empty() {
            return Ok(Vec::new());
        }
        let fences = fences.to_vec();
        self.write_waking(move |tx, now, ready| worker_path::release_many(tx, now, &fences, ready))
            .await
    }

    async fn job_list_stuck(&self, limit: u32) -> StoreResult<Vec<Job>> {
        self.read(move |tx, now| reads::job_list_stuck(tx, now, limit))
            .await
    }

    async fn job_rescue_many(&self, items: &[JobRescue]) -> StoreResult<Vec<Ack>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let items = items.to_vec();
        self.write_waking(move |tx, now, ready| worker_path::rescue_many(tx, now, &items, ready))
            .await
    }

    async fn job_cancel(
        &self,
        ids: &[JobId],
        reason: Option<&str>,
    ) -> StoreResult<Vec<CancelOutcome>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        let reason = reason.map(str::to_owned);
        self.write(move |tx, now| ops::cancel(tx, now, &ids, reason.as_deref()))
            .await
    }

    async fn job_retry(&self, ids: &[JobId]) -> StoreResult<Vec<RetryOutcome>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.write_waking(move |tx, now, ready| ops::retry(tx, now, &ids, ready))
            .await
    }

    async fn job_retry_failed(&self, filter: &RetryFailed) -> StoreResult<u64> {
        let filter = filter.clone();
        self.write_waking(move |tx, now, ready| ops::retry_failed(tx, now, &filter, ready))
            .await
    }

    async fn job_purge(&self, purge: &JobPurge) -> StoreResult<u64> {
        let purge = purge.clone();
        self.write(move |tx, _| ops::purge(tx, &purge)).await
    }

    async fn job_get(&self, id: JobId) -> StoreResult<Option<Job>> {
        self.read(move |tx, _| reads::job_get(tx, id)).await
    }

    async fn job_list(&self, list: &JobList) -> StoreResult<JobPage> {
        let list = list.clone();
        self.read(move |tx, now| reads::job_list(tx, now, &list))
            .await
    }

    async fn queue_stats(&self) -> StoreResult<Vec<QueueStats>> {
        self.read(reads::queue_stats).await
    }

    async fn job_finished_stats(
        &self,
        params: &JobFinishedStats,
    ) -> StoreResult<Vec<FinishedStats>> {
        let params = params.clone();
        self.read(move |tx, _| reads::job_finished_stats(tx, &params))
            .await
    }

    async fn job_throughput(&self, params: &JobThroughput) -> StoreResult<Vec<ThroughputBucket>> {
        let params = params.clone();
        self.read(move |tx, _| reads::job_throughput(tx, &params))
            .await
    }

    async fn event_insert(&self, event: &NewEvent) -> StoreResult<Event> {
        let event = event.clone();
        self.write(move |tx, now| ops::event_insert(tx, now, &event))
            .await
    }

    async fn event_list(&self, job_id: JobId) -> StoreResult<Vec<Event>> {
        self.read(move |tx, _| reads::event_list(tx, job_id)).await
    }

    async fn queue_pause(&self, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        self.write(move |tx, now| ops::queue_pause(tx, now, &name))
            .await
    }

    async fn queue_resume(&self, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        self.write(move |tx, now| ops::queue_resume(tx, now, &name))
            .await
    }

    async fn queue_list(&self) -> StoreResult<Vec<QueueInfo>> {
        self.read(|tx, _| reads::queue_list(tx)).await
    }

    async fn queue_limits_set(
        &self,
        name: &str,
        limits: errand_core::QueueLimits,
    ) -> StoreResult<()> {
        let name = name.to_owned();
        self.write(move |tx, now| ops::queue_limits_set(tx, now, &name, limits))
            .await
    }

    async fn worker_register(&self, worker: &WorkerRegistration) -> StoreResult<()> {
        let worker = worker.clone();
        self.write(move |tx, now| workers::register(tx, now, &worker))
            .await
    }

    async fn worker_heartbeat(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |tx, now| workers::heartbeat(tx, now, &id))
            .await
    }

    async fn worker_list(&self) -> StoreResult<Vec<WorkerRecord>> {
        self.read(|tx, _| workers::list(tx)).await
    }

    async fn worker_remove(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |tx, _| workers::remove(tx, &id)).await
    }

    async fn worker_prune(&self, last_seen_before: DateTime<Utc>) -> StoreResult<u64> {
        self.write(move |tx, _| workers::prune(tx, last_seen_before))
            .await
    }

    async fn schedule_create(&self, schedule: &ScheduleWrite) -> StoreResult<ScheduleRecord> {
        let schedule = schedule.clone();
        self.write(move |tx, now| schedules::create(tx, now, &schedule))
            .await
    }

    async fn schedule_update(&self, schedule: &ScheduleWrite) -> StoreResult<ScheduleRecord> {
        let schedule = schedule.clone();
        self.write(move |tx, now| schedules::update(tx, now, &schedule))
            .await
    }

    async fn schedule_delete(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        self.write(move |tx, _| schedules::delete(tx, &name)).await
    }

    async fn schedule_get(&self, name: &str) -> StoreResult<Option<ScheduleRecord>> {
        let name = name.to_owned();
        self.read(move |tx, _| schedules::get(tx, &name)).await
    }

    async fn schedule_list(&self) -> StoreResult<Vec<ScheduleRecord>> {
        self.read(|tx, _| schedules::list(tx)).await
    }

    async fn schedule_pause(&self, name: &str) -> StoreResult<ScheduleRecord> {
        let name = name.to_owned();
        self.write(move |tx, now| schedules::set_paused(tx, now, &name, true))
            .await
    }

    async fn schedule_resume(&self, name: &str) -> StoreResult<ScheduleRecord> {
        let name = name.to_owned();
        self.write(move |tx, now| schedules::set_paused(tx, now, &name, false))
            .await
    }

    async fn schedule_list_due(&self, limit: u32) -> StoreResult<DueSchedules> {
        self.read(move |tx, now| schedules::list_due(tx, now, limit))
            .await
    }

    async fn schedule_fire(&self, fire: &ScheduleFire) -> StoreResult<FireOutcome> {
        let fire = fire.clone();
        self.write_waking(move |tx, now, ready| schedules::fire(tx, now, &fire, ready))
            .await
    }

    async fn schedule_trigger(&self, name: &str, job: &JobInsert) -> StoreResult<Enqueued> {
        let name = name.to_owned();
        let job = job.clone();
        self.write_waking(move |tx, now, ready| schedules::trigger(tx, now, &name, &job, ready))
            .await
    }

    async fn schedule_fire_list(&self, list: &ScheduleFireList) -> StoreResult<Vec<FireRecord>> {
        let list = list.clone();
        self.read(move |tx, _| schedules::fire_list(tx, &list))
            .await
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<JobsReady> {
        self.subscribe_impl()
    }
}
