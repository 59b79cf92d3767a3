//! `Client`: an `errand::Client` for Python. Every operation is one name and a JSON object
//! in, JSON out: resources come back as `errand::views` (the views `errand --json` and the
//! HTTP API print), which the Python layer turns into dataclasses with the same field names.
//! Each operation runs blocking with the GIL released (`call`) or hands its result to a
//! callback (`call_async`, for asyncio).

use crate::bridge;
use crate::tasks;
use chrono::{TimeDelta, Utc};
use errand::views::{
    JobDetailView, JobPageView, JobView, QueueView, ScheduleDetailView, ScheduleView,
};
use errand::{JobId, JobList, NewJob, ScheduleInfo};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde_json::{json, Value};

/// A connection to an Errand database, with the app's tasks as its task settings.
#[pyclass(frozen, module = "errand._native")]
pub struct Client {
    pub(crate) inner: errand::Client,
}

#[pymethods]
impl Client {
    /// Opens (and migrates) the database at `url`: an SQLite path or `sqlite:` URL, or a
    /// `postgres://` URL, as the `errand` binary takes.
    #[staticmethod]
    fn connect(py: Python<'_>, url: String) -> PyResult<Client> {
        let inner = bridge::block_on(py, async move {
            errand::Client::connect(&url).await.map_err(crate::py_error)
        })?;
        Ok(Client { inner })
    }

    /// The same connection with `tasks` (JSON, see `tasks::definitions`) as its catalog.
    fn with_tasks(&self, tasks: &str) -> PyResult<Client> {
        let defs = tasks::definitions(&tasks::parse("tasks", tasks)?)?;
        Ok(Client {
            inner: self
                .inner
                .clone()
                .with_tasks(errand_runtime::task_catalog(&defs)),
        })
    }

    /// `sqlite` or `postgres`.
    fn backend(&self) -> String {
        format!("{:?}", self.inner.backend()).to_lowercase()
    }

    /// Runs operation `op` with `payload` (JSON) and returns its JSON answer; the GIL is
    /// released meanwhile.
    fn call(&self, py: Python<'_>, op: String, payload: &str) -> PyResult<String> {
        let payload = tasks::parse(&op, payload)?;
        let client = self.inner.clone();
        bridge::block_on(py, async move { run(&client, &op, payload).await }).map(|v| v.to_string())
    }

    /// As `call`, returning at once; `callback(error, answer)` is called on another thread.
    fn call_async(&self, op: String, payload: &str, callback: Py<PyAny>) -> PyResult<()> {
        let payload = tasks::parse(&op, payload)?;
        let client = self.inner.clone();
        bridge::spawn(
            async move { run(&client, &op, payload).await },
            |py, v| Ok(v.to_string().into_pyobject(py)?.into_any().unbind()),
            callback,
        );
        Ok(())
    }
}

fn field<'a>(p: &'a Value, key: &str) -> Option<&'a Value> {
    p.get(key).filter(|v| !v.is_null())
}

fn text(p: &Value, key: &str) -> Option<String> {
    field(p, key).and_then(Value::as_str).map(str::to_string)
}

/// A string field that must be a string when given (`null` and absent are "not given"): a
/// number or list is refused naming the field, never dropped.
fn strict_text(p: &Value, key: &str) -> PyResult<Option<String>> {
    match field(p, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(PyValueError::new_err(format!(
            "{key}: expected a string, got {other}"
        ))),
    }
}

fn int(p: &Value, key: &str) -> PyResult<Option<i64>> {
    match field(p, key) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| PyValueError::new_err(format!("{key}: expected an integer"))),
    }
}

fn i32_of(p: &Value, key: &str) -> PyResult<Option<i32>> {
    int(p, key)?
        .map(|n| {
            i32::try_from(n).map_err(|_| PyValueError::new_err(format!("{key}: out of range")))
        })
        .transpose()
}

fn ids(p: &Value) -> PyResult<Vec<JobId>> {
    field(p, "ids")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
        .ok_or_else(|| PyValueError::new_err("ids: expected a list of job ids (integers)"))
}

fn name(p: &Value) -> PyResult<String> {
    text(p, "name").ok_or_else(|| PyValueError::new_err("name: expected a string"))
}

fn view<T: serde::Serialize>(v: T) -> PyResult<Value> {
    serde_json::to_value(v).map_err(|e| crate::ErrandError::new_err(e.to_string()))
}

/// How far back a queue's `recent` figures look (as `GET /v1/queues`).
fn window() -> TimeDelta {
    TimeDelta::hours(1)
}

/// The enqueue builder for a payload of `enqueue` / `prepare`. Every field is passed on as
/// given: the engine's `NewJob::validate` refuses what is wrong (a negative delay, half a
/// reference), with the message every other entry point gives.
fn enqueue<'a>(c: &'a errand::Client, p: &Value) -> PyResult<errand::Enqueue<'a>> {
    let kind = text(p, "kind").ok_or_else(|| PyValueError::new_err("kind: missing"))?;
    let args = field(p, "args").cloned().unwrap_or_else(|| json!({}));
    let job = NewJob {
        queue: text(p, "queue"),
        priority: i32_of(p, "priority")?,
        max_attempts: i32_of(p, "max_attempts")?,
        delay_ms: int(p, "delay_ms")?,
        timeout_ms: int(p, "timeout_ms")?,
        unique_key: text(p, "unique_key"),
        concurrency_key: strict_text(p, "concurrency_key")?,
        key_concurrency: i32_of(p, "key_concurrency")?,
        reference_type: text(p, "reference_type"),
        reference_id: text(p, "reference_id"),
        ..NewJob::new(kind, args)
    };
    Ok(c.enqueue_job(job))
}

/// One operation of the client. Errors are the library's, as Python exceptions.
async fn run(c: &errand::Client, op: &str, p: Value) -> PyResult<Value> {
    let e = crate::py_error;
    let now = Utc::now;
    match op {
        "enqueue" => {
            let out = enqueue(c, &p)?.send().await.map_err(e)?;
            Ok(json!({"id": out.id, "inserted": out.inserted}))
        }
        "enqueue_many" => {
            let mut jobs = Vec::new();
            for one in field(&p, "jobs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                jobs.push(enqueue(c, one)?.into_new_job().map_err(e)?);
            }
            let out = c.enqueue_many(&jobs).await.map_err(e)?;
            let out: Vec<Value> = out
                .iter()
                .map(|q| json!({"id": q.id, "inserted": q.inserted}))
                .collect();
            Ok(Value::Array(out))
        }
        "prepare" => {
            // The job as the app's task catalog completes it, checked by the library's rules,
            // for a caller who writes it through the database itself (`defer_in`).
            let job = enqueue(c, &p)?.into_new_job().map_err(e)?;
            c.prepare(&job, None)
                .map_err(|v| e(errand::Error::Invalid(v)))?;
            // The args' exact text as the engine encoded and sized it, for the statement to
            // bind as is: a re-encode in Python could differ (escapes, spacing) and so in size.
            let args_text = job.args.get().to_string();
            let mut out = view(job)?;
            out["args_text"] = Value::String(args_text);
            Ok(out)
        }
        "job" => {
            let id = int(&p, "id")?.unwrap_or_default();
            let job = c.job(id).await.map_err(e)?;
            Ok(match job {
                Some(j) => view(JobView::new(&j, now()))?,
                None => Value::Null,
            })
        }
        "job_with_events" => {
            let id = int(&p, "id")?.unwrap_or_default();
            let (job, events) = c.job_with_events(id).await.map_err(e)?;
            view(JobDetailView::new(&job, &events, now()))
        }
        "list" => {
            let state = match text(&p, "state") {
                Some(s) => Some(s.parse().map_err(|m: String| PyValueError::new_err(m))?),
                None => None,
            };
            let filter = JobList {
                state,
                queue: text(&p, "queue"),
                kind: text(&p, "kind"),
                reference_type: text(&p, "reference_type"),
                reference_id: text(&p, "reference_id"),
                before_id: int(&p, "before_id")?,
                // The interfaces' rule (as HTTP's), on the value as given.
                limit: JobList::check_limit(int(&p, "limit")?.unwrap_or(50))
                    .map_err(|v| e(errand::Error::Invalid(v)))?,
                ..JobList::default()
            };
            let page = c.list(&filter).await.map_err(e)?;
            view(JobPageView::new(&page, now()))
        }
        "find_by_reference" => {
            let t = text(&p, "reference_type").unwrap_or_default();
            let id = text(&p, "reference_id").unwrap_or_default();
            let jobs = c.find_by_reference(&t, &id).await.map_err(e)?;
            let at = now();
            view(jobs.iter().map(|j| JobView::new(j, at)).collect::<Vec<_>>())
        }
        "stats" => {
            let stats = c.queue_stats().await.map_err(e)?;
            let settings = c.queues().await.map_err(e)?;
            let since = stats.first().map_or_else(now, |q| q.as_of) - window();
            let finished = c.finished_stats(since, None, None).await.map_err(e)?;
            view(QueueView::list(&stats, &settings, &finished, window()))
        }
        "cancel" => {
            let reason = text(&p, "reason");
            view(c.cancel(&ids(&p)?, reason.as_deref()).await.map_err(e)?)
        }
        "retry" => view(c.retry(&ids(&p)?).await.map_err(e)?),
        "pause_queue" => {
            c.pause_queue(&name(&p)?).await.map_err(e)?;
            Ok(Value::Null)
        }
        "resume_queue" => {
            c.resume_queue(&name(&p)?).await.map_err(e)?;
            Ok(Value::Null)
        }
        "set_queue_limits" => {
            // Checked here by the engine's rules so that the message names the field once
            // and says what was refused; the client checks them again.
            let queue = name(&p)?;
            let limits = tasks::limits_from(&p).map_err(|m| {
                crate::InvalidError::new_err(format!("queue {queue}: invalid limits: {m}"))
            })?;
            c.set_queue_limits(&queue, limits).await.map_err(e)?;
            Ok(Value::Null)
        }
        "schedules" => {
            let mut out = Vec::new();
            for info in c.schedules().await.map_err(e)? {
                out.push(schedule_view(c, &info).await?);
            }
            view(out)
        }
        "schedule" => {
            let detail = c.schedule(&name(&p)?, 5).await.map_err(e)?;
            let last = last_job(c, &detail.info).await?;
            view(ScheduleDetailView::new(&detail, last.as_ref()))
        }
        "schedule_pause" => {
            let info = c.schedule_pause(&name(&p)?).await.map_err(e)?;
            view(schedule_view(c, &info).await?)
        }
        "schedule_resume" => {
            let info = c.schedule_resume(&name(&p)?).await.map_err(e)?;
            view(schedule_view(c, &info).await?)
        }
        "schedule_trigger" => {
            let n = name(&p)?;
            let force = field(&p, "force").and_then(Value::as_bool).unwrap_or(false);
            let t = c.schedule_trigger(&n, force).await.map_err(e)?;
            Ok(match &t {
                errand::Triggered::Enqueued(q) => json!({"job_id": q.id, "skipped": null}),
                errand::Triggered::Skipped { .. } => {
                    json!({"job_id": null, "skipped": t.skip_message(&n)})
                }
            })
        }
        other => Err(PyValueError::new_err(format!(
            "unknown operation `{other}`"
        ))),
    }
}

async fn last_job(c: &errand::Client, info: &ScheduleInfo) -> PyResult<Option<errand::Job>> {
    match info.last_job_id {
        Some(id) => c.job(id).await.map_err(crate::py_error),
        None => Ok(None),
    }
}

async fn schedule_view(c: &errand::Client, info: &ScheduleInfo) -> PyResult<ScheduleView> {
    let last = last_job(c, info).await?;
    Ok(ScheduleView::new(info, last.as_ref()))
}
