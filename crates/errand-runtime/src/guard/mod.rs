//! Guards: a command never outlives the `errand` process that started it (Linux).
//!
//! Every attempt of a command task runs under a guard: the `errand` binary (or the runtime's
//! `guard_program`) run again as the hidden subcommand
//! `errand __guard --parent PID --status-fd 3 --lease-ms MS -- PROGRAM ...` (not in `--help`;
//! `main` dispatches it through [`run_if_requested`] before parsing the command line or
//! starting a runtime). The
//! guard leads the attempt's process group, runs the program in it, and dies with errand:
//!
//! ```text
//! errand ── fork+exec ──▶ errand __guard        (group leader, child subreaper,
//!                            │                    PR_SET_PDEATHSIG = SIGHUP)
//!                            └─▶ PROGRAM          (same group, PR_SET_PDEATHSIG = SIGKILL)
//!                                  └─▶ children, grandchildren (setsid or not)
//! ```
//!
//! | event | what happens |
//! | --- | --- |
//! | the program exits | the guard kills whatever of the attempt is left, then exits with the program's exit code, or is killed by the program's signal, so the handler reads the same status it would have read from the program |
//! | the program cannot start | the guard writes the OS error number to descriptor 3 (a pipe back to errand) and exits 127; the handler turns it into the same error as a failed start of the program itself |
//! | errand sends SIGTERM to the group (timeout, cancel, lost lease, stop) | the program gets it; the guard ignores it and keeps waiting |
//! | errand sends [`KILL_REQUEST`] to the guard (SIGTERM was not enough) | the guard SIGKILLs the attempt (below) and exits as the program did (killed by SIGKILL) |
//! | errand dies, even by `kill -9` | the kernel sends [`PARENT_DEATH`] to the guard, which SIGKILLs the attempt and exits; a check of `getppid()` every second backs the signal up |
//! | errand is stopped (SIGSTOP, SIGTSTP) for half the worker's lease | its lease is about to end (no heartbeat can renew it) and the job to be rescued elsewhere: the guard SIGKILLs the attempt before that can happen |
//! | the guard itself is killed | the program gets SIGKILL from its own parent-death signal |
//!
//! "The attempt" is every process of the guard's group and every process orphaned onto the
//! guard: it is the child subreaper (`PR_SET_CHILD_SUBREAPER`) of everything below it, so a
//! grandchild that left the group (`setsid`, a double fork) comes back to it when its parent
//! dies instead of going to init. The kill repeats over `/proc` until nothing is left, so
//! processes forked meanwhile and orphans of the previous pass's kills go too.
//!
//! Races closed: the guard arms its parent-death signal and then checks that errand is still
//! its parent (errand may have died in between); the program's start is refused if the guard
//! is already gone. Errand started the guard as the leader of a new group, so errand's signals
//! to the group cannot miss the program.
//!
//! The parent-death signal fires when the *thread* that forked the guard ends, not only the
//! process. A handler's future runs on whichever runtime thread polls it, and threads come and
//! go (the blocking pool retires idle threads; `block_in_place` hands a worker's role to a new
//! thread), so guards are not forked from there: [`spawn`] hands the fork to one thread of its
//! own that lives as long as the process. When errand exits, cleanly or not, every guard gets
//! the signal.

mod process;

pub use process::run;

use crate::handlers::GuardProgram;

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{mpsc, Mutex};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The hidden subcommand that runs a guard.
pub const SUBCOMMAND: &str = "__guard";
/// The running process's own executable, the guard's program by default.
pub const SELF_EXE: &str = "/proc/self/exe";
/// The signal the kernel sends a guard when errand dies (a catchable one, so that the guard
/// can kill the attempt before it goes).
pub const PARENT_DEATH: libc::c_int = libc::SIGHUP;
/// The signal errand sends a guard (its pid only, not the group) to have the attempt
/// SIGKILLed; from any other sender it is ignored.
pub const KILL_REQUEST: libc::c_int = libc::SIGUSR1;
/// The guard's descriptor of the status pipe.
const STATUS_FD: RawFd = 3;

/// Errand's end of a guard's status pipe: what the guard says about the program's start.
#[derive(Debug)]
pub struct Status {
    read: OwnedFd,
    /// The guard's end, held until the guard is started, then closed here.
    write: Option<OwnedFd>,
}

impl Status {
    /// After the guard has exited: the error of the program's start, if it could not start.
    pub fn spawn_error(&self) -> Option<io::Error> {
        let mut errno = [0u8; 4];
        // SAFETY: read(2) into a local buffer of the length given; the descriptor is ours
        // and non-blocking, so an empty pipe still held open elsewhere answers at once.
        let n = unsafe {
            libc::read(
                self.read.as_raw_fd(),
                errno.as_mut_ptr().cast(),
                errno.len(),
            )
        };
        (n == errno.len() as isize).then(|| io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
    }
}

/// A command that runs `argv` under a guard for a worker whose lease is `lease`, and the
/// guard's status pipe. The caller adds the environment and stdio (which the program gets),
/// then starts it with [`spawn`].
pub fn command(
    program: &GuardProgram,
    argv: &[String],
    lease: Option<Duration>,
) -> io::Result<(Command, Status)> {
    let (read, write) = status_pipe()?;
    let mut command = Command::new(program.path());
    if program.is_self() {
        // `ps` shows the name this process was started as, not `/proc/self/exe`.
        command.arg0(
            std::env::args_os()
                .next()
                .unwrap_or_else(|| OsString::from("errand")),
        );
    }
    command
        .arg(SUBCOMMAND)
        .arg("--parent")
        .arg(std::process::id().to_string())
        .arg("--status-fd")
        .arg(STATUS_FD.to_string());
    if let Some(lease) = lease {
        command
            .arg("--lease-ms")
            .arg(lease.as_millis().max(1).to_string());
    }
    command.arg("--").args(argv).process_group(0);
    let fd = write.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec: the status pipe's end
    // becomes descriptor 3 of the guard, without close-on-exec.
    unsafe {
        command.pre_exec(move || {
            let r = if fd == STATUS_FD {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, STATUS_FD)
            };
            if r == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok((
        command,
        Status {
            read,
            write: Some(write),
        },
    ))
}

/// The entry function of a binary that runs command tasks: when this process was started as
/// a guard (`PROGRAM __guard ...`, by [`command`]), runs it and never returns; else returns at
/// once. Call it first thing in `main`, before any thread or runtime starts.
pub fn run_if_requested() {
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(SUBCOMMAND)) {
        run(std::env::args_os().skip(2));
    }
}

/// Starts a guard built by [`command`], on the thread that forks every guard.
pub async fn spawn(command: Command, status: &mut Status) -> io::Result<Child> {
    let (reply, answer) = oneshot::channel();
    spawner()?
        .send(Spawn {
            command,
            runtime: Handle::current(),
            reply,
        })
        .map_err(|_| io::Error::other("the guard spawner thread is gone"))?;
    let child = answer
        .await
        .map_err(|_| io::Error::other("the guard spawner thread is gone"))?;
    // The guard has its copy (or never will); ours would keep the pipe from ending.
    status.write = None;
    child
}

/// Asks the guard `pid` to SIGKILL its attempt.
pub fn request_kill(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) on the pid of a guard not yet reaped; no memory is involved.
    unsafe {
        libc::kill(pid, KILL_REQUEST);
    }
}

/// One start for the spawner thread.
struct Spawn {
    command: Command,
    runtime: Handle,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// The spawner thread's queue; the thread starts with the first guard and lives as long as
/// the process (this sender is never dropped), so no guard's parent-death signal fires early.
static SPAWNER: Mutex<Option<mpsc::Sender<Spawn>>> = Mutex::new(None);

fn spawner() -> io::Result<mpsc::Sender<Spawn>> {
    let mut slot = SPAWNER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(sender) = &*slot {
        return Ok(sender.clone());
    }
    let (sender, queue) = mpsc::channel::<Spawn>();
    std::thread::Builder::new()
        .name("errand-spawner".into())
        .spawn(move || {
            for mut start in queue {
                // The child is reaped by the runtime that waits for it.
                let _runtime = start.runtime.enter();
                let _ = start.reply.send(start.command.spawn());
            }
        })?;
    *slot = Some(sender.clone());
    Ok(sender)
}

/// A pipe for a guard's status: errand's end non-blocking, both ends close-on-exec and above
/// the standard descriptors (so that the child's stdio set-up cannot overwrite them).
fn status_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) writes two descriptors into `fds`, which we then own.
    let (read, write) = unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) == -1 {
            return Err(io::Error::last_os_error());
        }
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    };
    let (read, write) = (above_stdio(read)?, above_stdio(write)?);
    // SAFETY: fcntl(2) on a descriptor we own.
    if unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((read, write))
}

/// `fd`, moved to a number above 2 if it is one of the standard descriptors (possible only
/// when errand was started with one of them closed).
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we own; `fd` closes on drop.
    unsafe {
        let moved = libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3);
        if moved == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(moved))
    }
}
