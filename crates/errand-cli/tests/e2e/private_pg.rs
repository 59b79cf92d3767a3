//! A PostgreSQL server of the test's own, to restart at will without disturbing the shared
//! server the other tests use: `initdb` into a temporary folder, its own free port, stopped
//! and removed when dropped (also when the test panics).
//!
//! `initdb` refuses to run as root, so as root the server's programs run as the `postgres`
//! user (`runuser`) in a folder owned by it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Where Debian's PostgreSQL 15 keeps its programs; `ERRAND_TEST_PG_BIN` overrides.
const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    /// The user the programs run as (`Some` when the test runs as root).
    run_as: Option<&'static str>,
    /// Server options beyond the usual ones (see [`start_with`](Self::start_with)).
    extra: String,
    pub port: u16,
}

impl PrivatePostgres {
    /// The folder holding `initdb` and `pg_ctl`, if it exists.
    pub fn binaries() -> Option<PathBuf> {
        let bin = PathBuf::from(std::env::var("ERRAND_TEST_PG_BIN").unwrap_or(DEFAULT_BIN.into()));
        (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some(bin)
    }

    /// initdb and start a server; panics (after cleaning up) if that fails.
    pub async fn start(bin: PathBuf) -> PrivatePostgres {
        PrivatePostgres::start_with(bin, |_| String::new()).await
    }

    /// Like [`start`](Self::start), with `configure` run on the fresh data folder first: it
    /// may write files there (given to the server's user afterwards; `pg_hba.conf`,
    /// certificates) and returns server options added to the usual ones (`-c ssl=on ...`;
    /// a later `-c` of the same setting wins).
    pub async fn start_with(
        bin: PathBuf,
        configure: impl FnOnce(&Path) -> String,
    ) -> PrivatePostgres {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let dir = std::env::temp_dir().join(format!("errand-e2e-pg-{}", crate::common::unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut pg = PrivatePostgres {
            bin,
            dir,
            run_as: root.then_some("postgres"),
            extra: String::new(),
            port: 0,
        };
        if root {
            let (uid, gid) = user_ids("postgres")
                .expect("running as root, and there is no `postgres` user to run PostgreSQL as");
            std::os::unix::fs::chown(&pg.dir, Some(uid), Some(gid)).unwrap();
        }
        let data = pg.data().display().to_string();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ],
        )
        .await;
        pg.extra = configure(&pg.data());
        if root {
            let (uid, gid) = user_ids("postgres").expect("checked above");
            for entry in std::fs::read_dir(pg.data()).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
                }
            }
        }
        // A free port can be taken between our probe and the server's bind: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            pg.port = free_port();
            let options = pg.options();
            let log = pg.log_path().display().to_string();
            match pg
                .try_run(
                    "pg_ctl",
                    &[
                        "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
                    ],
                )
                .await
            {
                Ok(_) => return pg,
                Err(e) => last = e,
            }
        }
        panic!("could not start a private PostgreSQL: {last}\n{}", pg.log());
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// `pg_ctl restart -m MODE` (`fast`: connections are ended cleanly; `immediate`: the
    /// server dies and recovers from its WAL, like a crash), waiting until it accepts
    /// connections again.
    pub async fn restart(&self, mode: &str) {
        let data = self.data().display().to_string();
        let log = self.log_path().display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-t", "60", "-m", mode, "restart",
            ],
        )
        .await;
    }

    /// `pg_ctl stop -m immediate`: the server dies as in a crash.
    pub async fn kill(&self) {
        let data = self.data().display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &data, "-w", "-t", "60", "-m", "immediate", "stop"],
        )
        .await;
    }

    /// `pg_ctl start` again after [`kill`](Self::kill), with the options of the first start.
    pub async fn start_again(&self) {
        let data = self.data().display().to_string();
        let log = self.log_path().display().to_string();
        let options = self.options();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
            ],
        )
        .await;
    }

    fn options(&self) -> String {
        format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c fsync=off -c full_page_writes=off -c max_connections=60 {}",
            self.port,
            self.dir.display(),
            self.extra
        )
    }

    /// `createdb NAME` over the server's Unix socket.
    pub async fn create_database(&self, name: &str) {
        let dir = self.dir.display().to_string();
        let port = self.port.to_string();
        self.run(
            "createdb",
            &["-h", &dir, "-p", &port, "-U", "postgres", name],
        )
        .await;
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn command(&self, program: &str, args: &[&str]) -> std::process::Command {
        let path = self.bin.join(program);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => std::process::Command::new(path),
        };
        cmd.args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    async fn try_run(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut cmd = tokio::process::Command::from(self.command(program, args));
        cmd.kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
            .await
            .map_err(|_| format!("{program} {args:?} did not finish within 90 s"))?
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "{program} {args:?} exited with {}: {text}",
                out.status
            ))
        }
    }

    async fn run(&self, program: &str, args: &[&str]) -> String {
        match self.try_run(program, args).await {
            Ok(text) => text,
            Err(e) => panic!("{e}\nserver log:\n{}", self.log()),
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let data = self.data().display().to_string();
            let _ = self
                .command(
                    "pg_ctl",
                    &["-D", &data, "-w", "-t", "30", "-m", "immediate", "stop"],
                )
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The uid and gid of `user`.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(user).ok()?;
    // SAFETY: getpwnam reads a static buffer; the fields are copied out at once, and the
    // tests do not call getpwnam concurrently from other threads.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return None;
        }
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}
