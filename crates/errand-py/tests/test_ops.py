"""Periodic tasks reconciled like `[schedules.NAME]` and fired by the worker, and the
operator's calls (queues, jobs, schedules) returning typed views, on both backends."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest

import errand
from conftest import await_job, wait_job

FAST = {"poll_interval": "20ms"}


async def test_periodic_tasks_are_reconciled_fired_and_operable(url):
    app = errand.App(url)
    fired: list = []

    @app.periodic(every="1s", name="tick", args={"source": "clock"})
    @app.task(queue="periodic")
    async def tick(source: str) -> str:
        fired.append(source)
        return source

    @app.periodic(cron="0 2 * * *", timezone="Europe/London", overlap="allow")
    def nightly() -> None: ...

    async with app.worker(**FAST):
        schedules = {s.name: s for s in await app.aio.schedules()}
        assert set(schedules) == {"tick", "nightly"}
        night = schedules["nightly"]
        assert (night.cron, night.timezone, night.overlap, night.kind, night.source) == (
            "0 2 * * *", "Europe/London", "allow", "nightly", "config")
        local = night.next_fire_at.astimezone(zoneinfo.ZoneInfo("Europe/London"))
        assert (local.hour, local.minute) == (2, 0)
        assert schedules["tick"].queue == "periodic"

        page = None
        for _ in range(200):
            page = await app.aio.list(kind="tick", state="succeeded")
            if page.jobs:
                break
            await __import__("asyncio").sleep(0.05)
        assert page.jobs and page.jobs[0].result == "clock", "the schedule fired and its job ran"

        paused = await app.aio.pause_schedule("nightly")
        assert paused.paused and paused.next_fire_at is None
        triggered = await app.aio.trigger_schedule("nightly")
        assert triggered.skipped is None and triggered.job_id is not None
        await await_job(app, triggered.job_id, "succeeded")
        assert not (await app.aio.resume_schedule("nightly")).paused
        detail = await app.aio.schedule("nightly")
        assert detail.schedule.name == "nightly" and len(detail.next_fires) == 5

    # A worker of an app that no longer declares `nightly` removes it, as `errand serve` does
    # for a table removed from errand.toml.
    app2 = errand.App(url)
    app2.periodic(every="1h", name="tick")(app2.task(queue="periodic", name="tick")(lambda source="x": None))
    with app2.start_worker(**FAST, scheduler=True):
        pass
    assert [s.name for s in app2.client.schedules()] == ["tick"]


def test_a_bad_schedule_is_refused_when_declared(tmp_path):
    app = errand.App(str(tmp_path / "s.db"))

    def job() -> None: ...

    with pytest.raises(ValueError, match=r"schedules\.bad\.cron"):
        app.periodic(cron="61 * * * *", name="bad")(job)
    with pytest.raises(ValueError, match=r"schedules\.zoned\.timezone"):
        app.periodic(cron="0 2 * * *", timezone="Mars/Olympus", name="zoned")(job)
    assert app.tasks == {} and app.schedules == {}, "nothing was declared"


def test_operator_calls_on_queues_and_jobs(url):
    app = errand.App(url)

    @app.task(queue="mail", max_attempts=3)
    def send(to: str) -> None:
        raise errand.Permanent("mailbox full")

    job = send.configure(reference=("user", 7)).defer(to="ada@example.com")
    app.client.pause_queue("mail")
    (mail,) = [q for q in app.client.stats() if q.name == "mail"]
    assert mail.paused and mail.paused_at is not None and mail.counts.queued == 1
    app.client.resume_queue("mail")

    with app.start_worker(**FAST):
        failed = wait_job(app, job.id, "failed")
        assert failed.last_error.endswith("errand._errors.Permanent: mailbox full")
        assert app.client.retry(job.id) == [{"outcome": "retried", "id": job.id}]
        again = wait_job(app, job.id, "failed")
        assert again.attempt == 1, "a retried job gets a fresh attempt budget"
    assert app.client.job(10**9) is None
    with pytest.raises(errand.NotFoundError):
        app.client.job_with_events(10**9)
    jobs = app.client.find_by_reference("user", "7")
    assert [j.id for j in jobs] == [job.id] and isinstance(jobs[0].finished_at, datetime.datetime)
    assert app.client.cancel(job.id)[0]["outcome"] == "unchanged"
