#!/usr/bin/env python3
"""An Errand command task: reads the job's args (JSON) on stdin, prints a JSON result line.

Errand runs it once per attempt with ERRAND_JOB_ID, ERRAND_ATTEMPT, ERRAND_KIND and
ERRAND_QUEUE in the environment. Exit 0: done (the last stdout line that is a JSON object is
stored as the job's result). Exit 75: try again later. Any other exit: a failed attempt, retried
while attempts remain, with the end of stderr as the error.
"""
import json
import os
import sys

args = json.load(sys.stdin)
image = args.get("image")
if not image:
    print("missing \"image\" in the args", file=sys.stderr)
    sys.exit(2)  # retried like any failure; a real script might log and exit 0 instead

if args.get("busy"):
    print("image store busy", file=sys.stderr)
    sys.exit(75)  # EX_TEMPFAIL: retried with backoff

print(f"making a thumbnail of {image} (attempt {os.environ.get('ERRAND_ATTEMPT')})")
size = int(args.get("size", 128))
print(json.dumps({"thumbnail": f"{image}.thumb-{size}.png", "size": size}))
