"""The examples newcomers copy, run as they are documented: the plain script, and the FastAPI
app under uvicorn (a signup enqueues in the app's transaction, a rolled-back one does not,
the periodic task is declared, SIGTERM drains the worker), on both backends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import errand
from conftest import wait_job

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "python"


def test_the_plain_script_runs_its_jobs(url):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "script.py"), url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split(":", 1)[1].strip() for line in lines] == [
        "succeeded {'words': 4}",
        "succeeded {'words': 2}",
        "failed errand._errors.Permanent: nothing to count",
        "succeeded {'words': 3}",
    ], out.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_fastapi_example_enqueues_in_its_transaction_and_drains_on_sigterm(url, tmp_path):
    port = free_port()
    log = tmp_path / "uvicorn.log"
    env = dict(os.environ, DATABASE=url, WELCOME_SECONDS="1.5")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:api", "--port", str(port)],
        cwd=EXAMPLES / "fastapi",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while "Application startup complete" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        r = httpx.post(f"{base}/signup", json={"email": "ada@example.com"}, timeout=30)
        assert r.status_code == 201, log.read_text()
        user_id, job_id = r.json()["user_id"], r.json()["job_id"]
        dup = httpx.post(f"{base}/signup", json={"email": "ada@example.com"}, timeout=30)
        assert dup.status_code == 409, dup.text

        app = errand.App(url)
        job = wait_job(app, job_id, "running", "succeeded")
        assert job.reference == errand.Reference(type="user", id=str(user_id))
        assert (job.queue, job.max_attempts, job.unique_key) == ("email", 5, f"welcome:{user_id}")
        assert [j.id for j in app.client.find_by_reference("user", user_id)] == [job_id]
        assert len(app.client.list(kind="send_welcome").jobs) == 1, "the rolled-back signup left no job"
        (nightly,) = app.client.schedules()
        assert (nightly.name, nightly.cron, nightly.timezone) == (
            "forget_test_users", "0 3 * * *", "Europe/London")

        assert job.status == "running", "the welcome job runs for 1.5 s: still running"
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then exits by the signal it got (as uvicorn does).
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM), log.read_text()
        assert "Application shutdown complete" in log.read_text()
        done = app.client.job(job_id)
        assert done.status == "succeeded", (done, log.read_text())
        assert done.result == {"user_id": user_id, "attempt": 1}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
