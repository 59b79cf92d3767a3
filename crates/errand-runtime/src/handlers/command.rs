//! Command handlers (design.md, Handlers): a program from `errand.toml` runs once per attempt.
//!
//! | the program | the job |
//! | --- | --- |
//! | reads the args JSON on stdin; `ERRAND_JOB_ID`, `ERRAND_ATTEMPT`, `ERRAND_MAX_ATTEMPTS`, `ERRAND_KIND`, `ERRAND_QUEUE` in its environment | |
//! | exits 0 | succeeded; the last stdout line that is a JSON object is the result |
//! | exits 75 (`EX_TEMPFAIL`) | an ordinary failed attempt: retried with backoff while attempts remain |
//! | exits with another code | a failed attempt with the tail of stderr; retried while attempts remain |
//! | is killed by a signal | a failed attempt naming the signal |
//! | cannot be started (no such program, not executable) | failed for good, naming the program |
//!
//! Each attempt runs under a guard (`crate::guard`): a small process that leads the
//! attempt's process group, dies with `errand`, and takes the attempt with it, even after a
//! `kill -9` of `errand`, grandchildren that left the group included. So a command never
//! outlives the lease of the worker that started it, and a rescued job's next attempt never
//! runs beside the last one; nor does it run on while `errand` is stopped (SIGSTOP) past the
//! lease. When the program exits, whatever it left running is killed too.
//! The guard exits as the program did, so the table above reads the program's own status.
//!
//! When the job must stop (timeout, operator cancel, lost lease, shutdown after the grace),
//! the process group gets SIGTERM, then SIGKILL (done by the guard, which also finds what left
//! the group) shortly before the worker's cancel grace runs out. Each attempt runs in a
//! process group of its own, so that a Ctrl-C in the terminal reaches only `errand` (which then
//! drains) and a stop reaches the program's own children too. stdout and stderr are captured,
//! keeping the last 64 KiB of each; the args and the output are never logged.

use crate::guard;
use crate::handlers::GuardProgram;
use errand::worker::{JobContext, StopReason};
use errand::{HandlerError, JobArgs};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::task::JoinHandle;

/// How much of stdout and of stderr is kept.
const CAPTURE_BYTES: usize = 64 * 1024;
/// How much of stderr goes into the error message: its last lines, at most this many bytes.
const ERROR_TAIL_LINES: usize = 20;
const ERROR_TAIL_BYTES: usize = 4 * 1024;
/// After the program exits, how long its output pipes may stay open (held by a child it left
/// behind) before the capture stops waiting.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);
/// `EX_TEMPFAIL` from sysexits.h: "try again later".
const EX_TEMPFAIL: i32 = 75;

/// Runs one configured program per attempt.
#[derive(Debug, Clone)]
pub struct CommandHandler {
    argv: Arc<[String]>,
    /// SIGTERM to SIGKILL: a little less than the worker's cancel grace, so the program is
    /// killed and reaped before the pool gives up on the handler.
    term_grace: Duration,
    /// How long the guard may take to kill the attempt before errand kills the group itself:
    /// half of what is left of the cancel grace.
    kill_patience: Duration,
    /// The worker's lease: the guard kills the attempt when errand has been stopped for half
    /// of it.
    lease: Option<Duration>,
    /// The program the guard runs as.
    guard: GuardProgram,
}

impl CommandHandler {
    /// A handler running `argv` (program first), for a worker whose cancel grace is
    /// `cancel_grace`.
    pub fn new(argv: Vec<String>, cancel_grace: Duration) -> Self {
        let margin = (cancel_grace / 5).min(Duration::from_secs(1));
        CommandHandler {
            argv: argv.into(),
            term_grace: cancel_grace.saturating_sub(margin),
            kill_patience: margin / 2,
            lease: None,
            guard: GuardProgram::new(None),
        }
    }

    /// The handler for a worker whose lease is `lease`: an attempt is killed once errand has
    /// been stopped (SIGSTOP, SIGTSTP) for half of it, before the lease can end.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The handler whose attempts' guards run as `guard` (default: this executable).
    pub fn with_guard(mut self, guard: GuardProgram) -> Self {
        self.guard = guard;
        self
    }

    /// Runs the program for one attempt of `ctx`'s job.
    pub async fn run(
        &self,
        ctx: JobContext,
        args: JobArgs,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        let program = &self.argv[0];
        let (mut command, mut status) = guard::command(&self.guard, &self.argv, self.lease)
            .map_err(|e| HandlerError::Error {
                message: format!("cannot start `{program}`: {e}"),
            })?;
        command
            .env("ERRAND_JOB_ID", ctx.id().to_string())
            .env("ERRAND_ATTEMPT", ctx.attempt().to_string())
            .env("ERRAND_MAX_ATTEMPTS", ctx.max_attempts().to_string())
            .env("ERRAND_KIND", ctx.kind())
            .env("ERRAND_QUEUE", ctx.queue())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child =
            guard::spawn(command, &mut status)
                .await
                .map_err(|e| HandlerError::Error {
                    message: format!("cannot start `{program}`: {e}"),
                })?;
        // From here on, if this future is dropped (the pool aborts a handler that outstays
        // its cancel grace), the guard kills the whole attempt, not only the program.
        let mut armed = KillOnDrop(child.id());

        let stdin = child.stdin.take();
        let input = tokio::spawn(async move {
            if let Some(mut stdin) = stdin {
                // The args' JSON text as the store returned it, not re-encoded.
                // A program that exits without reading its input is not an error.
                let _ = stdin.write_all(args.get().as_bytes()).await;
                let _ = stdin.shutdown().await;
            }
        });
        let stdout = Capture::start(child.stdout.take());
        let stderr = Capture::start(child.stderr.take());

        let exit = tokio::select! {
            exit = child.wait() => exit,
            reason = ctx.cancelled() => {
                tracing::info!(
                    job_id = ctx.id(),
                    kind = ctx.kind(),
                    attempt = ctx.attempt(),
                    reason = ?reason,
                    "stopping the command: SIGTERM to its process group"
                );
                // A lost lease: the job may be another worker's soon, so no SIGTERM grace.
                let grace = if reason == StopReason::LeaseLost { Duration::ZERO } else { self.term_grace };
                terminate(&mut child, grace, self.kill_patience).await;
                armed.0 = None;
                input.abort();
                // Whatever is returned now is not recorded: the stop reason decides.
                return Err(HandlerError::Error { message: format!("command stopped ({reason:?})") });
            }
        };
        armed.0 = None;
        input.abort();
        let exit = exit.map_err(|e| HandlerError::Error {
            message: format!("waiting for `{program}` failed: {e}"),
        })?;
        if let Some(e) = status.spawn_error() {
            return Err(spawn_error(program, e));
        }
        let stdout = stdout.finish().await;
        let stderr = stderr.finish().await;
        outcome(exit, &stdout, &stderr)
    }
}

/// Has the guard kill the attempt when dropped while armed (the guard has not been reaped).
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            guard::request_kill(pid);
        }
    }
}

/// Signals the process group the guard `pid` leads (the program is in it).
fn signal_group(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals the process group the guard leads
    // (`process_group(0)` made its pid the group id); it touches no memory of ours.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// SIGTERM to the program's group, up to `grace` for it to exit, then SIGKILL of everything
/// the attempt started (by its guard, which also finds what left the group; by errand, to the
/// group, should the guard not be done within `patience`); reaps the guard.
async fn terminate(child: &mut Child, grace: Duration, patience: Duration) {
    let Some(pid) = child.id() else {
        return; // already reaped
    };
    signal_group(pid, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_ok() {
        return; // the guard has killed whatever the program left behind
    }
    tracing::warn!(
        pid,
        "the command did not exit after SIGTERM; sending SIGKILL"
    );
    guard::request_kill(pid);
    if tokio::time::timeout(patience, child.wait()).await.is_err() {
        signal_group(pid, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

fn spawn_error(program: &str, e: io::Error) -> HandlerError {
    match e.kind() {
        io::ErrorKind::NotFound => {
            HandlerError::permanent(format!("cannot run `{program}`: no such program ({e})"))
        }
        io::ErrorKind::PermissionDenied => {
            HandlerError::permanent(format!("cannot run `{program}`: permission denied ({e})"))
        }
        // Out of processes or file descriptors: may well work on the next attempt.
        _ => HandlerError::Error {
            message: format!("cannot start `{program}`: {e}"),
        },
    }
}

/// The job's outcome from the program's exit status and its captured output.
fn outcome(
    status: ExitStatus,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<Option<serde_json::Value>, HandlerError> {
    if status.success() {
        return Ok(last_json_object(stdout));
    }
    let tail = error_tail(stderr);
    let with_tail = |head: String| {
        if tail.is_empty() {
            head
        } else {
            format!("{head}: {tail}")
        }
    };
    let message = match (status.code(), status.signal()) {
        (Some(EX_TEMPFAIL), _) => with_tail(format!("exit {EX_TEMPFAIL} (EX_TEMPFAIL)")),
        (Some(code), _) => with_tail(format!("exit {code}")),
        (None, Some(signal)) => with_tail(format!(
            "killed by signal {signal} ({})",
            signal_name(signal)
        )),
        (None, None) => with_tail(format!("ended abnormally ({status})")),
    };
    Err(HandlerError::Error { message })
}

/// The last line of `stdout` that is a JSON object, if any.
fn last_json_object(stdout: &[u8]) -> Option<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .filter(|v| v.is_object())
        })
}

/// The last [`ERROR_TAIL_LINES`] lines of stderr, at most [`ERROR_TAIL_BYTES`], trimmed.
fn error_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim_end();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(ERROR_TAIL_LINES)..].join("\n");
    if tail.len() <= ERROR_TAIL_BYTES {
        return tail.trim_start().to_string();
    }
    let mut start = tail.len() - ERROR_TAIL_BYTES;
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &tail[start..])
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "unknown signal",
    }
}

/// The last [`CAPTURE_BYTES`] of one output stream, read as the program writes it.
struct Capture {
    kept: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Capture {
    fn start<R: AsyncRead + Unpin + Send + 'static>(stream: Option<R>) -> Self {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let reader = stream.map(|mut stream| {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
                            kept.extend_from_slice(&buf[..n]);
                            if kept.len() > 2 * CAPTURE_BYTES {
                                let excess = kept.len() - CAPTURE_BYTES;
                                kept.drain(..excess);
                            }
                        }
                    }
                }
            })
        });
        Capture { kept, reader }
    }

    /// Waits (briefly) for the stream's end and returns what was kept.
    async fn finish(mut self) -> Vec<u8> {
        if let Some(reader) = self.reader.take() {
            let abort = reader.abort_handle();
            if tokio::time::timeout(DRAIN_AFTER_EXIT, reader)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let mut kept = std::mem::take(&mut *self.kept.lock().unwrap_or_else(|p| p.into_inner()));
        if kept.len() > CAPTURE_BYTES {
            let excess = kept.len() - CAPTURE_BYTES;
            kept.drain(..excess);
        }
        kept
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exit(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn success_takes_the_last_json_object_line() {
        let out = b"starting\n{\"a\":1}\nnot json {\n[1,2]\n{\"b\": 2}\n\ndone\n";
        assert_eq!(outcome(exit(0), out, b"").unwrap(), Some(json!({"b": 2})));
        assert_eq!(outcome(exit(0), b"hello\n[1]\n", b"").unwrap(), None);
        assert_eq!(outcome(exit(0), b"", b"").unwrap(), None);
    }

    #[test]
    fn exit_codes_and_signals_name_themselves_with_the_stderr_tail() {
        let e = outcome(exit(75), b"", b"db busy\n").unwrap_err();
        assert_eq!(
            e,
            HandlerError::Error {
                message: "exit 75 (EX_TEMPFAIL): db busy".into()
            }
        );
        let e = outcome(exit(3), b"", b"").unwrap_err();
        assert_eq!(e.message(), "exit 3");
        let e = outcome(ExitStatus::from_raw(libc::SIGKILL), b"", b"oom\n").unwrap_err();
        assert_eq!(e.message(), "killed by signal 9 (SIGKILL): oom");
    }

    #[test]
    fn the_error_tail_keeps_the_last_lines_and_bytes() {
        let many: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let tail = error_tail(many.as_bytes());
        assert!(tail.starts_with("line 11\n"), "{tail}");
        assert!(tail.ends_with("line 30"), "{tail}");
        let long = "é".repeat(5000);
        let tail = error_tail(long.as_bytes());
        assert!(tail.len() <= ERROR_TAIL_BYTES + "…".len(), "{}", tail.len());
        assert!(tail.starts_with('…'));
    }

    #[test]
    fn the_kill_comes_before_the_pool_gives_up() {
        let h = CommandHandler::new(vec!["true".into()], Duration::from_secs(5));
        assert_eq!(h.term_grace, Duration::from_secs(4));
        let h = CommandHandler::new(vec!["true".into()], Duration::from_millis(500));
        assert_eq!(h.term_grace, Duration::from_millis(400));
        let h = CommandHandler::new(vec!["true".into()], Duration::ZERO);
        assert_eq!(h.term_grace, Duration::ZERO);
    }

    #[tokio::test]
    async fn capture_keeps_the_tail_of_a_long_stream() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let capture = Capture::start(Some(std::io::Cursor::new(data.clone())));
        let kept = capture.finish().await;
        assert_eq!(kept.len(), CAPTURE_BYTES);
        assert_eq!(&kept[..], &data[data.len() - CAPTURE_BYTES..]);
    }
}
