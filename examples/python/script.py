"""Errand in a plain script: declare a task, enqueue jobs, run a worker on a thread until
they are done, print what they returned.

    python script.py [DATABASE]          # default: script.db; or postgres://user@host/db
"""

from __future__ import annotations

import sys
import time

import errand

app = errand.App(sys.argv[1] if len(sys.argv) > 1 else "script.db")


@app.task(max_attempts=3, timeout="30s")
def word_count(text: str) -> dict:
    if not text:
        raise errand.Permanent("nothing to count")
    return {"words": len(text.split())}


def main() -> None:
    texts = ["the quick brown fox", "jumps over", "", "the lazy dog"]
    jobs = [word_count.defer(text=t) for t in texts]
    with app.start_worker(queues={"default": 2}):
        for job in jobs:
            while (j := app.client.job(job.id)).status not in ("succeeded", "failed"):
                time.sleep(0.05)
            print(f"job {j.id}: {j.status} {j.result if j.result is not None else j.last_error.splitlines()[-1]}")


if __name__ == "__main__":
    main()
