"""Worker processes (`python -m errand worker`) on both backends: one killed with SIGKILL in
the middle of a job, whose job another worker rescues and finishes; one stopped with SIGTERM,
which claims nothing more and lets its running job finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import errand
from conftest import wait_job

JOBS = textwrap.dedent(
    """
    import os, time
    import errand

    app = errand.App(os.environ["ERRAND_TEST_URL"])
    MARKS = os.environ["ERRAND_TEST_MARKS"]

    @app.task
    def slow(ctx: errand.JobContext, seconds: float) -> dict:
        open(os.path.join(MARKS, f"started-{ctx.id}-{ctx.attempt}"), "w").close()
        if ctx.attempt == 1:
            time.sleep(seconds)
        return {"pid": os.getpid(), "attempt": ctx.attempt}
    """
)


class Worker:
    """`python -m errand worker jobs:app` in `dir`, its stderr in a file."""

    def __init__(self, dir: Path, url: str, *args: str) -> None:
        self.log = dir / f"worker-{time.monotonic_ns()}.log"
        env = dict(os.environ, ERRAND_TEST_URL=url, ERRAND_TEST_MARKS=str(dir))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "errand", "worker", "jobs:app", "--concurrency", "2", *args],
            cwd=dir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "w"),
        )

    def stderr(self) -> str:
        return self.log.read_text()

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            assert self.proc.poll() is None, f"the worker exited: {self.stderr()}"
            assert time.monotonic() < deadline, f"no {text!r} in: {self.stderr()}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def wait_file(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def setup(tmp_path: Path, url: str):
    (tmp_path / "jobs.py").write_text(JOBS)
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib

        os.environ["ERRAND_TEST_URL"] = url
        os.environ["ERRAND_TEST_MARKS"] = str(tmp_path)
        sys.modules.pop("jobs", None)
        jobs = importlib.import_module("jobs")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("jobs", None)
    return jobs.app, jobs.slow


def test_a_killed_worker_job_is_rescued_and_finished_by_another(tmp_path, url):
    app, slow = setup(tmp_path, url)
    first = Worker(tmp_path, url, "--lease", "2s")
    second = None
    try:
        first.wait_for("errand worker ready")
        job = slow.defer(seconds=120)
        wait_file(tmp_path / f"started-{job.id}-1")
        assert app.client.job(job.id).status == "running"
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        second = Worker(tmp_path, url, "--lease", "2s")
        done = wait_job(app, job.id, "succeeded", "failed", timeout=40)
        assert done.status == "succeeded", done
        assert done.result == {"pid": second.proc.pid, "attempt": 2}
        kinds = [e.kind for e in app.client.job_with_events(job.id).events]
        assert "rescued" in kinds, kinds
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_sigterm_stops_claiming_and_drains_the_running_job(tmp_path, url):
    app, slow = setup(tmp_path, url)
    worker = Worker(tmp_path, url, "--shutdown-grace", "20s")
    try:
        worker.wait_for("errand worker ready")
        running = slow.defer(seconds=1.5)
        wait_file(tmp_path / f"started-{running.id}-1")
        worker.proc.send_signal(signal.SIGTERM)
        worker.wait_for("no new jobs are claimed")
        time.sleep(0.3)
        later = slow.defer(seconds=0)
        assert worker.proc.wait(timeout=30) == 0, worker.stderr()
        assert "errand worker stopped" in worker.stderr()
        done = app.client.job(running.id)
        assert done.status == "succeeded" and done.attempt == 1, done
        assert app.client.job(later.id).status == "queued", "nothing was claimed after SIGTERM"
    finally:
        worker.stop()


EXITS = textwrap.dedent(
    """
    import asyncio, os, sys
    import errand

    app = errand.App(sys.argv[1])

    @app.task
    async def noop(n: int) -> None: ...

    async def main():
        noop.defer_many({"n": n} for n in range(1000))
        async with app.worker(queues={"default": 16}):
            while True:
                (q,) = await app.aio.stats()
                if q.counts.queued == 0 and q.counts.running == 0:
                    break
                await asyncio.sleep(0.002)

    asyncio.run(main())
    print("done")
    """
)


def test_a_process_exits_cleanly_right_after_its_worker_stops(tmp_path, url):
    # The engine's threads hand the worker's stop to Python from a callback; the interpreter's
    # exit must wait for them (errand registers the engine's shutdown with atexit), or it
    # crashes now and then while one of them is still inside Python.
    script = tmp_path / "exits.py"
    script.write_text(EXITS)
    for _ in range(5):
        out = subprocess.run([sys.executable, str(script), url], capture_output=True, text=True, timeout=120)
        assert (out.returncode, out.stdout.strip()) == (0, "done"), out.stderr[-2000:]
