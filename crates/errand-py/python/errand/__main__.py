"""``python -m errand worker MODULE:APP``: a standalone worker for an app's tasks.

    python -m errand worker myapp.jobs:app --queues email,default --concurrency 8

SIGTERM or SIGINT stops claiming and lets running jobs finish; a second signal exits at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, List, Optional


def load_app(target: str) -> Any:
    """The ``App`` at ``module:attribute`` (the current directory is importable)."""
    from ._app import App

    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"errand: expected MODULE:APP (e.g. myapp.jobs:app), got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise SystemExit(f"errand: {target} is not an errand.App (got {type(app).__name__})")
    return app


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m errand")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="run a worker for an app's tasks until SIGTERM")
    w.add_argument("app", help="MODULE:APP, e.g. myapp.jobs:app")
    w.add_argument("--queues", help="comma-separated queues (default: every task's queue)")
    w.add_argument("--concurrency", type=int, default=10, help="jobs at once per queue (default 10)")
    w.add_argument("--shutdown-grace", help="how long running jobs may finish on SIGTERM (default 30s)")
    w.add_argument("--lease", help="lease of a claimed job (default 30s)")
    w.add_argument("--no-scheduler", action="store_true", help="do not fire periodic tasks here")
    args = parser.parse_args(argv)

    app = load_app(args.app)
    queues = None
    if args.queues:
        queues = {q.strip(): args.concurrency for q in args.queues.split(",") if q.strip()}
    settings: dict = {"concurrency": args.concurrency, "scheduler": not args.no_scheduler}
    if args.shutdown_grace:
        settings["shutdown_grace"] = args.shutdown_grace
    if args.lease:
        settings["lease"] = args.lease
    app.run_worker(queues, **settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
