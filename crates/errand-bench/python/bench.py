"""The Python package's benchmark (W1 and W2 as docs/benchmarks.md defines them), beside errand-bench.

W1: N no-op `async def` jobs enqueued in bulk, then a worker (concurrency 16) starts in a child
process and drains them: jobs / seconds from the worker's start to the last success recorded;
the parent then checks every job succeeded at attempt 1. The child's peak RSS (VmHWM) is
reported. Run for Errand on SQLite and PostgreSQL, and for Procrastinate 3.x on the same
PostgreSQL in the same run.
W2: an idle worker (concurrency 16, in this process); 500 jobs deferred one at a time, 20 ms
apart; latency = handler start - the instant just before the defer call; p50/p95/p99/max.

    pip install ./crates/errand-py "procrastinate>=3,<4" psycopg
    python crates/errand-bench/python/bench.py [--jobs 20000] [--runs 3] [--pg postgres://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

CONCURRENCY = 16


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ---- databases -----------------------------------------------------------------------------


def fresh_pg(server: str) -> str:
    import psycopg

    name = f"errand_pybench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def drop_pg(server: str, url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- Errand --------------------------------------------------------------------------------


def errand_app(url: str):
    import errand

    app = errand.App(url)

    @app.task
    async def noop(seq: int = 0) -> None:
        return None

    return app, noop


def errand_w1_child(url: str, jobs: int) -> None:
    app, _ = errand_app(url)
    app.client.stats()  # opened and migrated before the clock starts

    async def main() -> float:
        t0 = time.perf_counter()
        async with app.worker(queues={"default": CONCURRENCY}, poll_interval="1s"):
            while True:
                (q,) = [q for q in await app.aio.stats() if q.name == "default"]
                if q.counts.succeeded >= jobs:
                    return time.perf_counter() - t0
                await asyncio.sleep(0.002)

    seconds = asyncio.run(main())
    print(json.dumps({"seconds": seconds, "rss_mib": peak_rss_mib()}))


def errand_w1(url: str, jobs: int) -> dict:
    app, noop = errand_app(url)
    for start in range(0, jobs, 1000):
        noop.defer_many({"seq": n} for n in range(start, min(jobs, start + 1000)))
    out = subprocess.run(
        [sys.executable, __file__, "--child-errand-w1", url, str(jobs)],
        capture_output=True, text=True, check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    (q,) = [q for q in app.client.stats() if q.name == "default"]
    assert q.counts.succeeded == jobs, q
    # Every job ran once: page through all of them (a page holds at most 500).
    seen, cursor = 0, None
    while True:
        page = app.client.list(state="succeeded", limit=500, before_id=cursor)
        assert all(j.attempt == 1 for j in page.jobs)
        seen += len(page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == jobs, (seen, jobs)
    r["jobs_per_s"] = jobs / r["seconds"]
    return r


def errand_w2(url: str, n: int) -> list:
    import errand

    app = errand.App(url)
    started: dict = {}

    @app.task
    async def ping(seq: int) -> None:
        started[seq] = time.perf_counter()

    async def main() -> list:
        before: dict = {}
        await app.aio.stats()
        async with app.worker(queues={"default": CONCURRENCY}):
            await asyncio.sleep(0.5)
            for seq in range(n):
                before[seq] = time.perf_counter()
                await ping.defer_async(seq=seq)
                await asyncio.sleep(0.02)
            deadline = time.monotonic() + 30
            while len(started) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        return [(started[s] - before[s]) * 1000 for s in range(n) if s in started]

    return asyncio.run(main())


# ---- Procrastinate -------------------------------------------------------------------------


def procrastinate_app(url: str):
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(queue="default")
    async def noop(seq: int = 0) -> None:
        return None

    return app, noop


def procrastinate_w1_child(url: str, jobs: int) -> None:
    app, _ = procrastinate_app(url)

    async def main() -> float:
        async with app.open_async():
            t0 = time.perf_counter()
            await app.run_worker_async(concurrency=CONCURRENCY, wait=False, install_signal_handlers=False)
            return time.perf_counter() - t0

    seconds = asyncio.run(main())
    print(json.dumps({"seconds": seconds, "rss_mib": peak_rss_mib()}))


def procrastinate_w1(url: str, jobs: int) -> dict:
    app, noop = procrastinate_app(url)

    async def load() -> None:
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            for start in range(0, jobs, 1000):
                await noop.batch_defer_async(*({"seq": n} for n in range(start, min(jobs, start + 1000))))

    asyncio.run(load())
    out = subprocess.run(
        [sys.executable, __file__, "--child-procrastinate-w1", url, str(jobs)],
        capture_output=True, text=True, check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    import psycopg

    with psycopg.connect(url) as c:
        done = c.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'").fetchone()[0]
    assert done == jobs, done
    r["jobs_per_s"] = jobs / r["seconds"]
    return r


# ---- report --------------------------------------------------------------------------------


def pct(samples: list, p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-errand-w1":
        return errand_w1_child(sys.argv[2], int(sys.argv[3]))
    if len(sys.argv) > 1 and sys.argv[1] == "--child-procrastinate-w1":
        return procrastinate_w1_child(sys.argv[2], int(sys.argv[3]))
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency-jobs", type=int, default=500)
    ap.add_argument("--pg", default=os.environ.get("ERRAND_BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    ap.add_argument("--no-procrastinate", action="store_true")
    args = ap.parse_args()

    rows = {}
    for backend in ("sqlite", "postgres"):
        w1, rss, w2 = [], [], []
        for _ in range(args.runs):
            tmp = tempfile.mkdtemp()
            url = os.path.join(tmp, "bench.db") if backend == "sqlite" else fresh_pg(args.pg)
            try:
                r = errand_w1(url, args.jobs)
                w1.append(r["jobs_per_s"])
                rss.append(r["rss_mib"])
            finally:
                if backend == "postgres":
                    drop_pg(args.pg, url)
            url = os.path.join(tmp, "lat.db") if backend == "sqlite" else fresh_pg(args.pg)
            try:
                w2 += errand_w2(url, args.latency_jobs)
            finally:
                if backend == "postgres":
                    drop_pg(args.pg, url)
        rows[f"errand {backend}"] = (w1, rss, w2)
        print(f"errand {backend}: W1 {statistics.median(w1):,.0f} jobs/s (runs {', '.join(f'{x:,.0f}' for x in w1)}); "
              f"W2 p50 {pct(w2, 50):.2f} p99 {pct(w2, 99):.2f} max {max(w2):.2f} ms; RSS {max(rss):.1f} MiB",
              flush=True)
    if not args.no_procrastinate:
        w1, rss = [], []
        for _ in range(args.runs):
            url = fresh_pg(args.pg)
            try:
                r = procrastinate_w1(url, args.jobs)
                w1.append(r["jobs_per_s"])
                rss.append(r["rss_mib"])
            finally:
                drop_pg(args.pg, url)
        rows["procrastinate postgres"] = (w1, rss, [])
        print(f"procrastinate postgres: W1 {statistics.median(w1):,.0f} jobs/s (runs {', '.join(f'{x:,.0f}' for x in w1)}); "
              f"RSS {max(rss):.1f} MiB", flush=True)

    print("\n| | W1 drain, median (jobs/s) | W2 p50 / p99 / max (ms) | worker peak RSS (MiB) |")
    print("| --- | --- | --- | --- |")
    for name, (w1, rss, w2) in rows.items():
        lat = f"{pct(w2, 50):.2f} / {pct(w2, 99):.2f} / {max(w2):.2f}" if w2 else "–"
        print(f"| {name} | {statistics.median(w1):,.0f} | {lat} | {max(rss):.1f} |")
    if "procrastinate postgres" in rows:
        ratio = statistics.median(rows["errand postgres"][0]) / statistics.median(rows["procrastinate postgres"][0])
        print(f"\nErrand / Procrastinate, PostgreSQL W1: {ratio:.1f}x")


if __name__ == "__main__":
    main()
