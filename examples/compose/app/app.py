#!/usr/bin/env python3
"""A small web app beside Errand, with the standard library only.

POST /signup {"email": ...} enqueues a `send_welcome` job over Errand's HTTP API (a token
with the enqueue role) and answers at once with the job's id. A remote worker thread in the
same process (a token with the worker role) claims `send_welcome` jobs from the `welcome`
queue and "sends" each one by appending a line to OUTBOX. GET /signup/{job_id} shows the
job as Errand sees it. On SIGTERM the app stops taking requests, the worker finishes the job
in hand, and the process exits.

    ERRAND_URL=http://127.0.0.1:7070 ERRAND_ENQUEUE_TOKEN=... ERRAND_WORKER_TOKEN=... \
        PYTHONPATH=../../remote-worker python3 app.py

The worker protocol (claim, heartbeat, complete, fail) is examples/remote-worker/worker.py,
imported here.
"""

import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import worker as errand_worker

ERRAND_URL = os.environ.get("ERRAND_URL", "http://127.0.0.1:7070").rstrip("/")
ENQUEUE_TOKEN = os.environ["ERRAND_ENQUEUE_TOKEN"]
WORKER_TOKEN = os.environ["ERRAND_WORKER_TOKEN"]
OUTBOX = os.environ.get("OUTBOX", "/tmp/outbox.log")
PORT = int(os.environ.get("PORT", "8000"))


def send_welcome(args):
    """The job: a stand-in for an email provider's API call."""
    with open(OUTBOX, "a") as f:
        f.write(json.dumps({"to": args["email"], "template": "welcome"}) + "\n")
    return {"sent_to": args["email"]}


def nightly_digest(args):
    """The 2 a.m. job of errand.toml's [schedules.nightly_digest]."""
    with open(OUTBOX, "a") as f:
        f.write(json.dumps({"digest": args.get("list")}) + "\n")
    return {"digest": args.get("list")}


errand_worker.HANDLERS["send_welcome"] = send_welcome
errand_worker.HANDLERS["nightly_digest"] = nightly_digest


def errand(method, path, body=None):
    """One call to Errand's API with the enqueue token; returns (status, JSON answer)."""
    request = urllib.request.Request(
        ERRAND_URL + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + ENQUEUE_TOKEN},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class App(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path != "/signup":
            return self.answer(404, {"error": "not found"})
        try:
            email = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))["email"]
        except (ValueError, KeyError, TypeError):
            return self.answer(400, {"error": 'expected {"email": "..."}'})
        # One welcome per address while one is pending: Errand's unique key.
        status, job = errand(
            "POST",
            "/v1/jobs",
            {"kind": "send_welcome", "args": {"email": email}, "unique_key": f"welcome:{email}"},
        )
        self.answer(202 if status in (200, 201) else 502, {"errand_status": status, "job": job})

    def do_GET(self):
        if self.path == "/healthz":
            return self.answer(200, {"status": "ok"})
        if self.path.startswith("/signup/") and self.path[len("/signup/"):].isdigit():
            status, job = errand("GET", "/v1/jobs/" + self.path[len("/signup/"):])
            return self.answer(status, job)
        self.answer(404, {"error": "not found"})

    def log_message(self, format, *args):
        print("app: " + format % args, file=sys.stderr, flush=True)


def main():
    stop = threading.Event()
    worker = threading.Thread(
        target=errand_worker.run_worker,
        args=(ERRAND_URL, WORKER_TOKEN, ["welcome"]),
        kwargs={"wait": 2.0, "stop": stop},
    )
    worker.start()
    server = ThreadingHTTPServer(("0.0.0.0", PORT), App)

    def shut_down(*_):
        stop.set()
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    print(f"app: listening on :{PORT}, Errand at {ERRAND_URL}", file=sys.stderr, flush=True)
    server.serve_forever()
    worker.join()
    print("app: stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
