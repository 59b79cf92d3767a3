#!/usr/bin/env python3
"""A remote Errand worker in Python, with the standard library only.

It claims jobs from `errand serve` over the HTTP API, runs a handler per job kind, keeps the
lease alive with heartbeats while a handler runs, and reports the outcome:

    POST /v1/worker/claim      {"worker_id", "queues", "limit", "lease", "wait"}  (long-polls)
    POST /v1/worker/heartbeat  {"worker_id", "jobs": [{"id", "attempt"}]}
    POST /v1/worker/jobs/{id}/complete  {"worker_id", "attempt", "result"}
    POST /v1/worker/jobs/{id}/fail      {"worker_id", "attempt", "error", "retry_after" | "permanent"}

A 409 answer means this worker no longer holds the job (its lease expired and someone else
has it, or it was cancelled): drop the job and record nothing.

    python3 worker.py --url http://127.0.0.1:7070 --token "$ERRAND_TOKEN" --queues default,email

Add your own handlers to HANDLERS: a function of the job's args returning a JSON-able result,
raising RetryAfter(seconds) to be retried later, Permanent to fail for good, or any other
exception for an ordinary (retried) failure.
"""

import argparse
import json
import os
import socket
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request


class RetryAfter(Exception):
    """Retry the job after `seconds`, whatever the backoff says."""

    def __init__(self, message, seconds):
        super().__init__(message)
        self.seconds = seconds


class Permanent(Exception):
    """Fail the job for good."""


class Stale(Exception):
    """The server says this worker no longer holds the job (HTTP 409)."""


def add(args):
    return {"sum": args["a"] + args["b"]}


def sleep(args):
    time.sleep(float(args.get("seconds", 1)))
    return {"slept": args.get("seconds", 1)}


def always_fails(args):
    raise Permanent("this job always fails: " + str(args.get("why", "no reason")))


HANDLERS = {"add": add, "sleep": sleep, "always_fails": always_fails}


class Api:
    def __init__(self, url, token, timeout):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def post(self, path, body, timeout=None):
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        if self.token:
            request.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            if e.code == 409:
                raise Stale(detail) from None
            raise RuntimeError(f"POST {path}: HTTP {e.code}: {detail}") from None


class Heartbeat(threading.Thread):
    """Extends the leases of every job of the current batch (running or waiting its turn)
    every `every` seconds, and notes the jobs that were lost or asked to stop."""

    def __init__(self, api, worker_id, jobs, every):
        super().__init__(daemon=True)
        self.api, self.worker_id, self.every = api, worker_id, every
        self.lock = threading.Lock()
        self.held = {job["id"]: job["attempt"] for job in jobs}
        self.state = {}  # job id -> "lost" | "cancel_requested"
        self.done = threading.Event()

    def release(self, job_id):
        with self.lock:
            self.held.pop(job_id, None)

    def run(self):
        while not self.done.wait(self.every):
            with self.lock:
                jobs = [{"id": i, "attempt": a} for i, a in self.held.items()]
            if not jobs:
                continue
            try:
                answer = self.api.post("/v1/worker/heartbeat", {"worker_id": self.worker_id, "jobs": jobs})
                for job in answer["jobs"]:
                    if job["state"] != "held":
                        self.state[job["id"]] = job["state"]
            except Exception as e:  # a missed beat is not fatal: the lease is longer than the period
                log(f"heartbeat failed: {e}")


def log(message):
    print(f"worker: {message}", file=sys.stderr, flush=True)


def run_job(api, worker_id, job, beat):
    """Runs one job and reports its outcome; True when it succeeded."""
    fence = {"worker_id": worker_id, "attempt": job["attempt"]}
    state = beat.state.get(job["id"])
    try:
        if state == "lost":
            log(f"job {job['id']}: lost before it started, skipped")
            return False
        handler = HANDLERS.get(job["kind"])
        if state == "cancel_requested":
            outcome = ("fail", dict(fence, error="cancelled before it started"))
        elif handler is None:
            outcome = ("fail", dict(fence, error=f"no handler for kind {job['kind']!r} in this worker", permanent=True))
        else:
            try:
                outcome = ("complete", dict(fence, result=handler(job["args"])))
            except RetryAfter as e:
                outcome = ("fail", dict(fence, error=str(e), retry_after=f"{int(e.seconds * 1000)}ms"))
            except Permanent as e:
                outcome = ("fail", dict(fence, error=str(e), permanent=True))
            except Exception as e:
                outcome = ("fail", dict(fence, error=f"{e}\n{traceback.format_exc()}"))
        action, body = outcome
        try:
            api.post(f"/v1/worker/jobs/{job['id']}/{action}", body)
            log(f"job {job['id']} ({job['kind']}): {'succeeded' if action == 'complete' else 'failed'}")
            return action == "complete"
        except Stale as e:
            log(f"job {job['id']}: no longer ours, dropped ({e})")
            return False
    finally:
        beat.release(job["id"])


def run_worker(url, token, queues, limit=4, lease=30.0, wait=10.0, exit_when_idle=False, max_jobs=0, stop=None):
    """Claims and runs jobs of `queues` until `stop` (a threading.Event) is set, or the
    worker is idle (`exit_when_idle`), or `max_jobs` are done. Returns how many it ran. A
    program embeds a worker by calling this in a thread (see examples/compose/app/app.py)."""
    worker_id = f"py-{socket.gethostname()}-{os.getpid()}-{threading.get_ident() % 10000}"
    api = Api(url, token, timeout=30)
    stop = stop or threading.Event()
    log(f"{worker_id} claiming from {','.join(queues)} at {url}")
    done = 0
    while not stop.is_set():
        claim = {
            "worker_id": worker_id,
            "queues": queues,
            "limit": limit,
            "lease": f"{int(lease * 1000)}ms",
            "wait": f"{int(wait * 1000)}ms",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "version": "worker.py",
        }
        try:
            jobs = api.post("/v1/worker/claim", claim, timeout=wait + 30)["jobs"]
        except (OSError, RuntimeError) as e:
            log(f"claim failed, retrying in 1s: {e}")
            stop.wait(1)
            continue
        if not jobs and exit_when_idle:
            log(f"idle: exiting after {done} jobs")
            return done
        beat = Heartbeat(api, worker_id, jobs, max(lease / 3, 0.5))
        beat.start()
        try:
            for job in jobs:
                run_job(api, worker_id, job, beat)
                done += 1
        finally:
            beat.done.set()
            beat.join()
        if max_jobs and done >= max_jobs:
            log(f"done {done} jobs")
            return done
    return done


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("ERRAND_URL", "http://127.0.0.1:7070"))
    parser.add_argument("--token", default=os.environ.get("ERRAND_TOKEN"), help="a token with the worker role")
    parser.add_argument("--queues", default="default", help="comma-separated")
    parser.add_argument("--limit", type=int, default=4, help="jobs per claim")
    parser.add_argument("--lease", type=float, default=30.0, help="seconds")
    parser.add_argument("--wait", type=float, default=10.0, help="long-poll seconds per claim")
    parser.add_argument("--exit-when-idle", action="store_true", help="stop after a claim that found nothing")
    parser.add_argument("--max-jobs", type=int, default=0, help="stop after this many jobs (0: never)")
    options = parser.parse_args()
    run_worker(
        options.url,
        options.token,
        [q for q in options.queues.split(",") if q],
        limit=options.limit,
        lease=options.lease,
        wait=options.wait,
        exit_when_idle=options.exit_when_idle,
        max_jobs=options.max_jobs,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
