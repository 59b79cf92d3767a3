"""Drives a real `errand serve` through a client generated from its OpenAPI document.

Run by .ci/openapi-client.sh, which generates the client (openapi-python-client) and installs
it. Every call must come back as the model the document names for a success: a value the
models refuse, or an answer the document does not describe, raises and fails the run.

    python openapi_client_test.py BASE_URL ADMIN_TOKEN
"""

import sys

from errand_http_api_client import AuthenticatedClient
from errand_http_api_client.api.jobs import enqueue, get_job, list_jobs
from errand_http_api_client.api.queues import list_queues
from errand_http_api_client.api.remote_worker import worker_claim, worker_complete, worker_fail, worker_heartbeat
from errand_http_api_client.api.schedules import (
    create_schedule,
    get_schedule,
    list_schedules,
    trigger_schedule,
)
from errand_http_api_client.api.workers import list_workers
from errand_http_api_client.models import (
    ClaimRequest,
    ClaimResponse,
    CompleteRequest,
    DerivedState,
    EnqueueRequest,
    Enqueued,
    FailRequest,
    HeartbeatRequest,
    HeartbeatResponse,
    JobEnvelope,
    JobPage,
    JobStatus,
    JobWithEvents,
    Ok,
    QueueList,
    ScheduleCreateRequest,
    ScheduleDetail,
    ScheduleEnvelope,
    ScheduleList,
    Triggered,
    WorkerList,
)


def expect(value, model, what):
    if not isinstance(value, model):
        raise SystemExit(f"{what}: expected {model.__name__}, got {value!r}")
    print(f"ok: {what}")
    return value


def main(base_url: str, token: str) -> None:
    client = AuthenticatedClient(
        base_url=base_url, token=token, raise_on_unexpected_status=True, timeout=30.0
    )

    # Enqueue: a plain job with a reference, and a delayed one (derived `scheduled`).
    plain = expect(
        enqueue.sync(
            client=client,
            body=EnqueueRequest.from_dict(
                {
                    "kind": "send_email",
                    "queue": "client",
                    "args": {"to": "ada@example.com", "password": "x"},
                    "reference": {"type": "user", "id": 42},
                }
            ),
        ),
        Enqueued,
        "enqueue a job",
    )
    later = expect(
        enqueue.sync(
            client=client,
            body=EnqueueRequest(kind="send_email", queue="client", delay="1h"),
        ),
        Enqueued,
        "enqueue a delayed job",
    )

    # List and show: an ordinary job has no derived view (null), the delayed one is scheduled.
    page = expect(list_jobs.sync(client=client, queue="client"), JobPage, "list jobs")
    by_id = {j.id: j for j in page.jobs}
    if by_id[plain.id].derived is not None or by_id[plain.id].status != JobStatus.QUEUED:
        raise SystemExit(f"plain job: {by_id[plain.id]!r}")
    if by_id[later.id].derived != DerivedState.SCHEDULED:
        raise SystemExit(f"delayed job: {by_id[later.id]!r}")
    shown = expect(get_job.sync(plain.id, client=client), JobWithEvents, "show a job")
    if shown.job.reference is None or shown.job.reference.type_ != "user" or shown.job.reference.id != "42":
        raise SystemExit(f"reference: {shown.job.reference!r}")

    # Claim it as a remote worker, heartbeat, fail it once (retrying), claim and complete.
    claimed = expect(
        worker_claim.sync(
            client=client,
            body=ClaimRequest(worker_id="py-client", queues=["client"], wait="1s"),
        ),
        ClaimResponse,
        "claim",
    )
    if [j.id for j in claimed.jobs] != [plain.id]:
        raise SystemExit(f"claimed {claimed.jobs!r}, expected job {plain.id}")
    job = claimed.jobs[0]
    beat = expect(
        worker_heartbeat.sync(
            client=client,
            body=HeartbeatRequest.from_dict(
                {"worker_id": "py-client", "jobs": [{"id": job.id, "attempt": job.attempt}]}
            ),
        ),
        HeartbeatResponse,
        "heartbeat",
    )
    if beat.jobs[0].state.value != "held":
        raise SystemExit(f"heartbeat: {beat!r}")
    failed = expect(
        worker_fail.sync(
            job.id,
            client=client,
            body=FailRequest(worker_id="py-client", attempt=job.attempt, error="boom", retry_after="0s"),
        ),
        JobEnvelope,
        "fail an attempt",
    )
    if failed.job.derived != DerivedState.RETRYING:
        raise SystemExit(f"after a failure: {failed.job!r}")
    again = expect(
        worker_claim.sync(
            client=client,
            body=ClaimRequest(worker_id="py-client", queues=["client"], wait="5s"),
        ),
        ClaimResponse,
        "claim the retry",
    )
    if [j.id for j in again.jobs] != [plain.id]:
        raise SystemExit(f"claimed {again.jobs!r}, expected job {plain.id} again")
    expect(
        worker_complete.sync(
            job.id,
            client=client,
            body=CompleteRequest.from_dict(
                {"worker_id": "py-client", "attempt": again.jobs[0].attempt, "result": {"sent": True}}
            ),
        ),
        Ok,
        "complete",
    )
    done = expect(get_job.sync(plain.id, client=client), JobWithEvents, "show the finished job")
    if done.job.status != JobStatus.SUCCEEDED or not done.events:
        raise SystemExit(f"finished job: {done!r}")

    # Schedules, queues and workers.
    expect(
        create_schedule.sync(
            client=client,
            body=ScheduleCreateRequest.from_dict({"name": "hourly", "every": "1h", "kind": "report"}),
        ),
        ScheduleEnvelope,
        "create a schedule",
    )
    expect(trigger_schedule.sync("hourly", client=client), Triggered, "trigger a schedule")
    listed = expect(list_schedules.sync(client=client), ScheduleList, "list schedules")
    if [s.name for s in listed.schedules] != ["hourly"] or listed.schedules[0].last_run is None:
        raise SystemExit(f"schedules: {listed!r}")
    detail = expect(get_schedule.sync("hourly", client=client), ScheduleDetail, "show a schedule")
    if not detail.next_fires or len(detail.runs) != 1:
        raise SystemExit(f"schedule detail: {detail!r}")
    expect(list_queues.sync(client=client), QueueList, "list queues")
    workers = expect(list_workers.sync(client=client), WorkerList, "list workers")
    if "py-client" not in [w.id for w in workers.workers]:
        raise SystemExit(f"workers: {workers!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    print("openapi client: 1 passed, 0 failed")
