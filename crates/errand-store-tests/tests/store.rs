//! The behaviour suite on both backends: `cargo test -p errand-store-tests sqlite` or `postgres`.

errand_store_tests::store_suite!(
    migrate_is_idempotent_and_reports_version,
    job_insert_stores_every_field,
    job_insert_many_returns_ids_in_input_order,
    job_insert_many_dedups_unique_keys_within_and_across_batches,
    job_insert_unique_key_is_free_again_once_finished,
    job_insert_concurrent_unique_key_gives_one_job,
    job_insert_delayed_and_absolute_run_at,
    job_insert_many_without_keys_keeps_each_jobs_fields,
    job_insert_many_mixing_keyed_and_unkeyed_inputs,
    job_insert_many_concurrent_batches_with_overlapping_keys,
    job_claim_sets_running_attempt_and_lease,
    job_claim_orders_by_priority_then_run_at_then_id,
    job_claim_skips_delayed_jobs_until_run_at,
    job_claim_only_takes_its_queue,
    queue_pause_stops_claims_until_resumed,
    job_claim_global_concurrency_caps_the_queue_until_jobs_end_or_are_rescued,
    job_claim_key_concurrency_runs_one_per_key_and_a_busy_key_blocks_no_other,
    job_claim_key_limit_is_the_jobs_then_the_queues_then_one,
    job_claim_limits_hold_with_many_claimers_on_two_stores,
    job_claim_rate_limit_counts_starts_in_a_sliding_window,
    queue_limits_set_is_listed_and_replaced,
    job_claim_concurrent_claimers_take_each_job_exactly_once,
    job_complete_stores_result_and_writes_no_event,
    job_complete_many_mixes_done_and_stale_in_input_order,
    job_fail_with_retry_requeues_after_backoff,
    job_fail_after_last_attempt_ends_failed_with_every_error_kept,
    job_fail_permanent_error_fails_at_once,
    job_heartbeat_extends_leases_and_reports_lost_and_cancelled_jobs,
    job_rescue_requeues_expired_leases_and_counts_the_attempt,
    job_rescue_fails_jobs_without_attempts_left_and_cancels_requested_ones,
    job_rescue_leaves_a_job_whose_lease_was_renewed,
    job_stale_worker_cannot_record_after_rescue,
    job_release_hands_back_without_spending_the_attempt,
    job_progress_is_written_while_the_lease_is_held_and_kept_after_success,
    job_progress_is_stale_once_the_job_was_rescued_or_ended,
    job_progress_is_cleared_when_the_next_attempt_is_claimed,
    job_progress_refuses_values_beyond_the_limit,
    job_cancel_queued_running_finished_and_missing,
    job_retry_gives_failed_and_cancelled_jobs_a_fresh_budget,
    job_retry_failed_in_batches_filtered_by_queue,
    job_retry_never_gives_a_live_unique_key_to_a_second_job,
    job_retry_of_several_jobs_with_one_key_retries_only_one,
    job_purge_deletes_old_finished_jobs_in_batches_with_their_events,
    job_list_filters_and_pages,
    job_list_finds_every_status_by_kind_state_and_queue,
    job_list_retrying_state,
    queue_stats_counts_by_status_and_oldest_ready,
    queue_stats_counts_follow_every_transition,
    job_finished_stats_counts_outcomes_and_durations_since,
    job_throughput_buckets_by_time_and_queue,
    event_insert_and_list_in_order,
    worker_register_heartbeat_list_remove_prune,
    subscribe_hints_on_insert_of_ready_jobs,
    subscribe_hints_on_retry_and_release,
    subscribe_hints_on_rescue_requeue_only,
);

/// Every case in `src/cases/` must be listed above, or it would silently never run.
#[test]
fn every_case_is_listed() {
    let areas = [
        include_str!("../src/cases/enqueue.rs"),
        include_str!("../src/cases/worker_path.rs"),
        include_str!("../src/cases/flow.rs"),
        include_str!("../src/cases/progress.rs"),
        include_str!("../src/cases/rescue.rs"),
        include_str!("../src/cases/operator.rs"),
        include_str!("../src/cases/reads.rs"),
        include_str!("../src/cases/stats.rs"),
        include_str!("../src/cases/workers.rs"),
        include_str!("../src/cases/wakeups.rs"),
    ];
    let mod_rs = include_str!("../src/cases/mod.rs");
    let declared = mod_rs.lines().filter(|l| l.starts_with("mod ")).count();
    assert_eq!(
        declared,
        areas.len(),
        "a file of src/cases/ is not read by this test"
    );
    let cases = areas.concat();
    let this = include_str!("store.rs");
    let listed = this
        .split("store_suite!(")
        .nth(1)
        .unwrap()
        .split(");")
        .next()
        .unwrap();
    for line in cases.lines() {
        if let Some(rest) = line.strip_prefix("pub async fn ") {
            let name = rest.split('(').next().unwrap();
            assert!(
                listed
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .any(|n| n == name),
                "case `{name}` is not listed in tests/store.rs"
            );
        }
    }
}
