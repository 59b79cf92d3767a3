"""The package itself: it imports, ships its type information, and its views carry the field
names of the engine's JSON views."""

from __future__ import annotations

import dataclasses
import importlib.resources
import json

import errand
from errand import _native


def test_the_package_imports_with_its_native_module_and_type_information():
    assert errand.App is not None
    files = importlib.resources.files("errand")
    assert files.joinpath("py.typed").is_file(), "py.typed is shipped"
    assert files.joinpath("_native.pyi").is_file(), "the native module's stubs are shipped"
    assert issubclass(errand.InvalidError, errand.ErrandError)
    assert issubclass(errand.NotSerializable, errand.InvalidError)


def test_durations_are_read_by_the_engine_rule():
    assert _native.parse_duration_ms("timeout", "1h30m") == 5_400_000
    assert _native.parse_duration_ms("timeout", "500ms") == 500
    try:
        _native.parse_duration_ms("timeout", "10 minutes")
    except ValueError as e:
        assert "timeout" in str(e) and "invalid duration" in str(e)
    else:
        raise AssertionError("a bad duration was accepted")


def _fields(cls):
    return {f.name for f in dataclasses.fields(cls)}


def test_views_have_the_field_names_of_the_engine_json(url):
    app = errand.App(url)

    @app.task(queue="q")
    def noop(n: int) -> None: ...

    job = noop.configure(reference=("user", 7)).defer(n=1)
    client = app._native_client()
    raw_job = json.loads(client.call("job", json.dumps({"id": job.id})))
    assert set(raw_job) == _fields(errand.Job)
    assert set(raw_job["reference"]) == _fields(errand.Reference)
    raw_queue = json.loads(client.call("stats", "{}"))[0]
    assert set(raw_queue) == _fields(errand.Queue)
    assert set(raw_queue["counts"]) == _fields(errand.QueueCounts)
    assert set(raw_queue["recent"]) == _fields(errand.QueueRecent)
    page = json.loads(client.call("list", "{}"))
    assert set(page) == _fields(errand.JobPage)
    app.client.cancel(job.id, reason="to have an event")
    detail = json.loads(client.call("job_with_events", json.dumps({"id": job.id})))
    assert set(detail) == _fields(errand.JobDetail)
    assert set(detail["events"][0]) == _fields(errand.Event)
    typed = app.client.job(job.id)
    assert typed.reference == errand.Reference(type="user", id="7")
    assert typed.created_at.tzinfo is not None
