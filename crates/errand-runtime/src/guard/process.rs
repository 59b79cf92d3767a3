//! The guard process itself:
//! `errand __guard --parent PID [--status-fd FD] [--lease-ms MS] -- PROGRAM [ARGS...]`.
//!
//! A plain synchronous program (no async runtime, one thread), so that every signal it waits
//! for is its own and the parent-death signal has one thread to watch. The steps, in order:
//!
//! 1. block every catchable signal but the synchronous faults, so that what errand sends to
//!    the process group (SIGTERM) reaches the program and leaves the guard standing to report
//!    the outcome, and so that no SIGCHLD is lost;
//! 2. ask for [`PARENT_DEATH`] when errand dies, and become the child subreaper of everything
//!    below it;
//! 3. check that errand is still its parent (had errand died before step 2, the signal would
//!    never come);
//! 4. start the program in the guard's own process group (the one errand signals) with
//!    stdin, stdout and stderr passed through (if that fails, write the OS error number to
//!    the status descriptor and exit 127);
//! 5. wait for one of: the program's exit, the parent's death (signal, or `getppid()` changed,
//!    checked at least every second), a kill request ([`KILL_REQUEST`] from errand's pid), or
//!    errand stopped (SIGSTOP, SIGTSTP) for half its lease (`--lease-ms`; see
//!    [`stop_limit`]);
//! 6. kill whatever of the attempt is left ([`sweep`]), then exit the way the program did:
//!    with its exit code, or killed by its signal.

use super::{KILL_REQUEST, PARENT_DEATH};
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// How often the guard checks its parent without being told: the backstop of the
/// parent-death signal.
const PARENT_CHECK: Duration = Duration::from_secs(1);
/// How long a sweep keeps killing before it gives up on what will not die (a process stuck
/// in the kernel, which SIGKILL reaches once it comes back).
const SWEEP_PATIENCE: Duration = Duration::from_secs(5);

/// What the command line asks for.
#[derive(Debug, PartialEq)]
struct Request {
    parent: libc::pid_t,
    status_fd: Option<RawFd>,
    lease: Option<Duration>,
    argv: Vec<OsString>,
}

impl Request {
    /// `--parent PID [--status-fd FD] [--lease-ms MS] -- PROGRAM [ARGS...]`.
    fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Request, String> {
        let mut args = args.into_iter();
        let mut parent = None;
        let mut status_fd = None;
        let mut lease = None;
        loop {
            let Some(flag) = args.next() else {
                return Err("missing `-- PROGRAM`".into());
            };
            let number = |name: &str, value: Option<OsString>| {
                value
                    .and_then(|v| v.to_str().and_then(|s| s.parse::<i32>().ok()))
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("{name} needs a positive number"))
            };
            match flag.to_str() {
                Some("--parent") => parent = Some(number("--parent", args.next())?),
                Some("--status-fd") => status_fd = Some(number("--status-fd", args.next())?),
                Some("--lease-ms") => {
                    let ms = number("--lease-ms", args.next())?;
                    lease = Some(Duration::from_millis(ms as u64));
                }
                Some("--") => break,
                _ => return Err(format!("unexpected argument {flag:?}")),
            }
        }
        let argv: Vec<OsString> = args.collect();
        if argv.is_empty() {
            return Err("missing the program after `--`".into());
        }
        let parent = parent.ok_or("missing --parent PID")?;
        Ok(Request {
            parent,
            status_fd,
            lease,
            argv,
        })
    }
}

/// Runs the guard; never returns.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ! {
    let request = match Request::parse(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("errand __guard: {e}");
            std::process::exit(2);
        }
    };
    let signals = waited_signals();
    // SAFETY (this block): plain system calls on values owned here; prctl's extra arguments
    // are the unused zeros the manual asks for.
    unsafe {
        if let Some(fd) = request.status_fd {
            // Ours only: the program must not inherit it.
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, PARENT_DEATH, 0, 0, 0);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        if libc::getppid() != request.parent {
            // errand died before the parent-death signal was armed: start nothing.
            std::process::exit(1);
        }
    }

    let me = std::process::id() as libc::pid_t;
    // The guard leads the process group that errand signals (errand started it as the leader
    // of a new group already; this makes sure of it when run otherwise, so that a sweep can
    // never reach a group that is not the attempt's).
    // SAFETY: setpgid(2) and getpgrp(2) on this process; no memory is involved.
    if unsafe { libc::setpgid(0, 0) != 0 && libc::getpgrp() != me } {
        eprintln!("errand __guard: cannot lead a process group of its own");
        std::process::exit(2);
    }
    let mut command = std::process::Command::new(&request.argv[0]);
    // In the guard's process group: errand's SIGTERM to the group reaches the program.
    command.args(&request.argv[1..]);
    // SAFETY: only async-signal-safe calls between fork and exec. The program dies with the
    // guard (should the guard itself be killed), and refuses to start if the guard is
    // already gone. The standard library clears the signal mask of the child before this.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != me {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let program = match command.spawn() {
        Ok(child) => child.id() as libc::pid_t,
        Err(e) => {
            if let Some(fd) = request.status_fd {
                report_spawn_error(fd, &e);
            }
            std::process::exit(127);
        }
    };
    drop(command);
    if let Some(fd) = request.status_fd {
        // SAFETY: the descriptor was handed to us for this one use.
        unsafe { libc::close(fd) };
    }
    release_stdio();

    let mut reaper = Reaper {
        program,
        status: None,
    };
    let outcome = watch(request.parent, request.lease, &signals, &mut reaper);
    if outcome == Watched::ParentGone {
        sweep(me, &mut reaper);
        std::process::exit(1);
    }
    // The program has exited, errand asked for the kill, or the lease is over: nothing the
    // program started may stay.
    if outcome != Watched::Exited || reaper.reap() {
        sweep(me, &mut reaper);
    }
    exit_like(
        reaper
            .status
            .unwrap_or_else(|| ExitStatus::from_raw(libc::SIGKILL)),
    )
}

/// How the wait for the program ended.
#[derive(Debug, PartialEq, Eq)]
enum Watched {
    Exited,
    KillRequested,
    ParentGone,
    /// errand has been stopped for so long that its lease may soon be over.
    LeaseOver,
}

/// Waits for the program's exit, errand's death, its kill request, or errand stopped for
/// [`stop_limit`].
fn watch(
    parent: libc::pid_t,
    lease: Option<Duration>,
    signals: &libc::sigset_t,
    reaper: &mut Reaper,
) -> Watched {
    let mut stopped_since: Option<Instant> = None;
    let (check, limit) = match lease {
        Some(lease) => stop_limit(lease),
        None => (PARENT_CHECK, Duration::MAX),
    };
    let timeout = libc::timespec {
        tv_sec: check.as_secs() as libc::time_t,
        tv_nsec: check.subsec_nanos() as libc::c_long,
    };
    loop {
        // SAFETY: `info` is written by the kernel before it is read; `signals` and `timeout`
        // outlive the call.
        let (signal, sender) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let signal = libc::sigtimedwait(signals, &mut info, &timeout);
            (signal, if signal > 0 { info.si_pid() } else { 0 })
        };
        // SAFETY: getppid(2) cannot fail.
        if unsafe { libc::getppid() } != parent {
            return Watched::ParentGone;
        }
        if signal == KILL_REQUEST && sender == parent {
            return Watched::KillRequested;
        }
        if lease.is_some() {
            if is_stopped(parent) {
                if stopped_since.get_or_insert_with(Instant::now).elapsed() >= limit {
                    return Watched::LeaseOver;
                }
            } else {
                stopped_since = None;
            }
        }
        // SIGCHLD, the periodic check, or a signal that was for the program's group (which
        // the program got too): reap, and keep waiting while the program lives.
        reaper.reap();
        if reaper.status.is_some() {
            return Watched::Exited;
        }
    }
}

/// Reaps the guard's children: the program, and whatever below it was orphaned onto the
/// guard (the subreaper).
struct Reaper {
    program: libc::pid_t,
    status: Option<ExitStatus>,
}

impl Reaper {
    /// Reaps every child that has exited, keeping the program's status, and tells whether
    /// any child is left. Every live descendant of the guard is a child of it or below one:
    /// an orphan comes to the guard, the subreaper.
    fn reap(&mut self) -> bool {
        loop {
            let mut status = 0;
            // SAFETY: waitpid(2) writes only `status`.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid == 0 {
                return true; // children left, none of them exited
            }
            if pid < 0 {
                return false; // ECHILD: none left (signals are blocked: no EINTR)
            }
            if pid == self.program {
                self.status = Some(ExitStatus::from_raw(status));
            }
        }
    }
}

/// Kills everything that belongs to the attempt: every other process of the guard's group, and
/// every process orphaned onto the guard (which is how a grandchild that left the group with
/// `setsid` or a double fork is found once its parent is gone). Repeats until a pass over
/// `/proc` finds nothing, so that processes forked meanwhile, and orphans reparented by the
/// previous pass's kills, go too.
/// The guard leads the group, so its pid is the group's id.
fn sweep(me: libc::pid_t, reaper: &mut Reaper) {
    let deadline = Instant::now() + SWEEP_PATIENCE;
    loop {
        let mut found = false;
        for (pid, state, ppid, pgrp) in processes() {
            if pid == me || (pgrp != me && ppid != me) {
                continue;
            }
            found = true;
            if state != 'Z' {
                // SAFETY: kill(2) on a pid just read from /proc; no memory is involved.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        reaper.reap();
        if !found || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How often to look at a stopped errand, and for how long it may stay stopped before the
/// attempt is killed, for a worker whose lease is `lease`.
///
/// A worker renews its leases every third of the lease, so a stopped worker's lease ends
/// between 2/3 of a lease and a whole lease after the stop. The stop is seen at most one
/// check (at most 1/8 of the lease) late, and the kill comes half a lease after it is seen:
/// at most 5/8 of a lease after the stop, before the lease can have ended and the job been
/// handed to another worker.
fn stop_limit(lease: Duration) -> (Duration, Duration) {
    let check = (lease / 8).clamp(Duration::from_millis(1), PARENT_CHECK);
    (check, lease / 2)
}

/// Whether process `pid` is stopped by a signal (`T`). Not a tracing stop (`t`): under
/// `strace` a busy process is seen in one at every look, and it still renews its leases.
fn is_stopped(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| parse_stat(&stat))
        .is_some_and(|(state, _, _)| state == 'T')
}

/// Every process: (pid, state, parent pid, process group), from `/proc/PID/stat`.
fn processes() -> Vec<(libc::pid_t, char, libc::pid_t, libc::pid_t)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (state, ppid, pgrp) = parse_stat(&stat)?;
            Some((pid, state, ppid, pgrp))
        })
        .collect()
}

/// State, parent pid and process group from a `/proc/PID/stat` line: `pid (comm) S ppid
/// pgrp ...`, where comm may hold spaces and parentheses, so the fields start after the last
/// `)`.
fn parse_stat(stat: &str) -> Option<(char, libc::pid_t, libc::pid_t)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

/// The signals the guard waits for instead of being stopped or killed by them: all but the
/// synchronous faults (which would be its own bugs) and SIGKILL and SIGSTOP (which cannot be
/// blocked).
fn waited_signals() -> libc::sigset_t {
    // SAFETY: sigfillset and sigdelset initialise and edit the set in place.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for fault in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGSYS,
        ] {
            libc::sigdelset(&mut set, fault);
        }
        set
    }
}

/// Writes the OS error of a failed start to errand's status descriptor.
fn report_spawn_error(fd: RawFd, e: &io::Error) {
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    // SAFETY: the descriptor was handed to us for this one use; ManuallyDrop leaves closing
    // it to the process exit.
    let mut file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    let _ = file.write_all(&errno.to_ne_bytes());
}

/// Points the guard's own stdin, stdout and stderr at /dev/null: the program holds errand's
/// pipes, and when it and its children are gone errand sees their end.
fn release_stdio() {
    // SAFETY: open(2) and dup2(2) on descriptors this process owns.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null < 0 {
            return;
        }
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if null > 2 {
            libc::close(null);
        }
    }
}

/// Exits as the program did: with its exit code, or killed by the same signal (without a
/// core file of the guard).
fn exit_like(status: ExitStatus) -> ! {
    if let Some(code) = status.code() {
        std::process::exit(code);
    }
    if let Some(signal) = status.signal() {
        // SAFETY: the default action for `signal`, unblocked, then raised at ourselves.
        unsafe {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::signal(signal, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(signal);
        }
        std::process::exit(128 + signal);
    }
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_command_line_names_the_parent_and_the_program() {
        let r = Request::parse(args(&[
            "--parent",
            "42",
            "--status-fd",
            "3",
            "--lease-ms",
            "1500",
            "--",
            "sh",
            "-c",
            "x",
        ]))
        .unwrap();
        assert_eq!(
            r,
            Request {
                parent: 42,
                status_fd: Some(3),
                lease: Some(Duration::from_millis(1500)),
                argv: args(&["sh", "-c", "x"])
            }
        );
        for (bad, error) in [
            (&["--", "sh"][..], "missing --parent PID"),
            (
                &["--parent", "x", "--", "sh"],
                "--parent needs a positive number",
            ),
            (&["--parent", "1"], "missing `-- PROGRAM`"),
            (&["--parent", "1", "--"], "missing the program after `--`"),
            (&["--nope"], "unexpected argument \"--nope\""),
        ] {
            assert_eq!(Request::parse(args(bad)).unwrap_err(), error, "{bad:?}");
        }
    }

    #[test]
    fn a_stopped_errand_loses_its_attempts_before_its_lease_can_end() {
        assert_eq!(
            stop_limit(Duration::from_secs(2)),
            (Duration::from_millis(250), Duration::from_secs(1))
        );
        assert_eq!(
            stop_limit(Duration::from_secs(30)),
            (Duration::from_secs(1), Duration::from_secs(15))
        );
        for ms in [30, 100, 2_000, 30_000, 600_000] {
            let lease = Duration::from_millis(ms);
            let (check, limit) = stop_limit(lease);
            assert!(check + limit < lease * 2 / 3, "{lease:?}");
        }
    }

    #[test]
    fn stat_fields_come_after_the_last_parenthesis() {
        assert_eq!(
            parse_stat("123 (a) b) c) S 7 123 123 0 -1"),
            Some(('S', 7, 123))
        );
        assert_eq!(parse_stat("9 (sleep) Z 1 9 1 0"), Some(('Z', 1, 9)));
        assert_eq!(parse_stat("garbage"), None);
    }
}
