//! Handlers: what a job's code sees ([`JobContext`]) and how typed and untyped handler
//! functions are erased into one shape the executor can run.

use crate::progress::ProgressWriter;
use crate::signal::{JobStop, StopReason};
use errand_core::{HandlerError, Job, JobArgs, JobId, ProgressError, Task};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What a handler is given besides its arguments: which job and attempt this is, and a
/// signal telling it to stop.
///
/// The signal fires when an operator cancels the job, when this worker lost the job's lease,
/// when the job's execution timeout passes, and when the worker shuts down and the grace
/// period is over. A handler should then return soon: after the worker's cancel grace it is
/// aborted (dropped at its next `.await`). Code that blocks the thread cannot be aborted: a
/// handler stuck in a blocking call keeps its slot, and its lease, until the call returns.
/// Leases are extended by the pool while the handler runs; a handler need not heartbeat.
/// It may report how far it has come with [`JobContext::progress`], which operators see on
/// the job.
///
/// Cheap to clone (an `Arc` inside), so it can be moved into tasks the handler spawns.
#[derive(Clone)]
pub struct JobContext {
    job: Arc<Job>,
    stop: JobStop,
    worker_id: Arc<str>,
    timeout: Option<Duration>,
    progress: Arc<ProgressWriter>,
}

impl std::fmt::Debug for JobContext {
    // Not derived: a job's args may hold secrets and must not end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.job.id)
            .field("kind", &self.job.kind)
            .field("queue", &self.job.queue)
            .field("attempt", &self.job.attempt)
            .field("worker_id", &self.worker_id)
            .field("stop", &self.stop.reason())
            .finish()
    }
}

impl JobContext {
    pub(crate) fn new(
        job: Arc<Job>,
        stop: JobStop,
        worker_id: Arc<str>,
        timeout: Option<Duration>,
        progress: Arc<ProgressWriter>,
    ) -> Self {
        JobContext {
            job,
            stop,
            worker_id,
            timeout,
            progress,
        }
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.job.id
    }

    /// The task kind that selected this handler.
    pub fn kind(&self) -> &str {
        &self.job.kind
    }

    /// The queue the job was claimed from.
    pub fn queue(&self) -> &str {
        &self.job.queue
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> i32 {
        self.job.attempt
    }

    /// The job's attempt budget; `attempt() == max_attempts()` is the last try.
    pub fn max_attempts(&self) -> i32 {
        self.job.max_attempts
    }

    /// The job's arguments as stored: the JSON text of an object, not decoded
    /// ([`JobArgs::decode`] decodes it). May hold secrets: do not log it.
    pub fn args(&self) -> &JobArgs {
        &self.job.args
    }

    /// The whole job record as claimed (priority, reference, timestamps...).
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The id of the worker running this attempt.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The execution limit this attempt runs under, `None` for none.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// True once the handler has been asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.stop.reason().is_some()
    }

    /// Why the handler was asked to stop, if it was.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop.reason()
    }

    /// Completes, with the reason, when the handler is asked to stop; use it in a
    /// `tokio::select!` beside the work.
    pub async fn cancelled(&self) -> StopReason {
        self.stop.stopped().await
    }

    /// Reports how far the job has come: any value that serialises to JSON, by convention
    /// `{"done": 40, "total": 100, "message": "..."}`, shown on the job as `progress` (with
    /// `progress_at`) until the next attempt starts, and kept after the job finishes. It may
    /// hold secrets as args do: readers without the right to see them get it redacted.
    ///
    /// Never waits for the store, so it can be called in a tight loop and from any thread:
    /// at most one write per job is in flight, a report made meanwhile replaces the pending
    /// one, and the last report is written before the job's outcome is recorded. A report
    /// after the worker lost the job is dropped. An error only for a value that cannot be
    /// reported: one that does not serialise, or over 8 KiB as compact JSON
    /// ([`errand_core::MAX_PROGRESS_BYTES`]).
    pub fn progress<T: Serialize>(&self, value: T) -> Result<(), ProgressError> {
        self.progress.report(&value)
    }
}

/// What every handler becomes: the job's result as JSON (`None` when the handler returned
/// something that serializes to `null`), or the error that failed the attempt.
pub(crate) type HandlerOutput = Result<Option<serde_json::Value>, HandlerError>;

pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = HandlerOutput> + Send + 'static>>;

/// A handler with its argument decoding folded in. Calling it does no work: everything,
/// decoding included, happens when the returned future is polled in the job's own task, so
/// a panic anywhere in it is captured there.
pub(crate) type ErasedHandler = Arc<dyn Fn(JobContext) -> HandlerFuture + Send + Sync>;

pub(crate) fn typed<T, F, Fut, R>(f: F) -> ErasedHandler
where
    T: Task,
    F: Fn(JobContext, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
    R: Serialize + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |ctx: JobContext| {
        let f = f.clone();
        Box::pin(async move {
            // The one decode of the args: from the text the claim returned, into `T`.
            let args = ctx.args().decode::<T>().map_err(|e| {
                HandlerError::permanent(format!(
                    "the args of this `{}` job do not decode as {}: {}",
                    ctx.kind(),
                    std::any::type_name::<T>(),
                    decode_error(&e)
                ))
            })?;
            let out = f(ctx, args).await?;
            to_result_json(out)
        }) as HandlerFuture
    })
}

/// What a handler registered by kind takes its args as: a `serde_json::Value` (decoded once,
/// from the text), or the [`JobArgs`] themselves (not decoded at all, for handlers that pass
/// the JSON on, such as commands and HTTP tasks).
pub trait KindArgs: Sized + Send + 'static {
    /// The args in this form, or why they cannot be.
    fn from_args(args: &JobArgs) -> Result<Self, serde_json::Error>;
}

impl KindArgs for serde_json::Value {
    fn from_args(args: &JobArgs) -> Result<Self, serde_json::Error> {
        args.decode()
    }
}

impl KindArgs for JobArgs {
    fn from_args(args: &JobArgs) -> Result<Self, serde_json::Error> {
        Ok(args.clone())
    }
}

pub(crate) fn untyped<A, F, Fut, R>(f: F) -> ErasedHandler
where
    A: KindArgs,
    F: Fn(JobContext, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
    R: Serialize + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |ctx: JobContext| {
        let f = f.clone();
        Box::pin(async move {
            let args = A::from_args(ctx.args()).map_err(|e| {
                HandlerError::permanent(format!(
                    "the args of this `{}` job do not decode: {}",
                    ctx.kind(),
                    decode_error(&e)
                ))
            })?;
            let out = f(ctx, args).await?;
            to_result_json(out)
        }) as HandlerFuture
    })
}

fn to_result_json<R: Serialize>(out: R) -> HandlerOutput {
    match serde_json::to_value(out) {
        Ok(serde_json::Value::Null) => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(e) => Err(HandlerError::Error {
            message: format!("the handler's result could not be serialized to JSON: {e}"),
        }),
    }
}

/// A decode error as a job's record shows it: serde's message without the position in the
/// text (the args are one line, and a reader looks for the field), its quoted values elided.
fn decode_error(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    elide_quoted(message.strip_suffix(&position).unwrap_or(&message))
}

/// serde's messages quote the offending value (`invalid type: string "hunter2", expected
/// u32`), and args may hold secrets: keep the message's shape, drop the quoted text.
fn elide_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            out.push_str(if inside { "\"" } else { "\"…" });
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_elided_from_decode_errors() {
        assert_eq!(
            elide_quoted(r#"invalid type: string "hunter2", expected u32"#),
            r#"invalid type: string "…", expected u32"#
        );
        assert_eq!(elide_quoted("missing field `to`"), "missing field `to`");
    }

    #[test]
    fn decode_errors_name_the_problem_not_the_position() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Login {
            user: String,
            pin: u32,
        }
        let args = JobArgs::from_value(&serde_json::json!({"user": "ada", "pin": "hunter2"}));
        let e = args.decode::<Login>().unwrap_err();
        assert_eq!(
            decode_error(&e),
            r#"invalid type: string "…", expected u32"#
        );
        let e = JobArgs::empty().decode::<Login>().unwrap_err();
        assert_eq!(decode_error(&e), "missing field `user`");
    }

    #[test]
    fn null_results_store_nothing() {
        assert_eq!(to_result_json(()).unwrap(), None);
        assert_eq!(
            to_result_json(serde_json::json!({"n": 1})).unwrap(),
            Some(serde_json::json!({"n": 1}))
        );
    }
}
