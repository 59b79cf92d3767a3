//! SIGTERM and SIGINT for a process that runs until told to stop
//! ([`RuntimeHandle::run_until_signal`](crate::RuntimeHandle::run_until_signal)). Installed
//! before the services start, so that a signal during start-up is a clean stop, not a kill.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGTERM and SIGINT, caught from creation on.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers (inside a tokio runtime).
    pub fn new() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next signal's name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// How a runtime that ran until a signal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every service stopped in order.
    Drained,
    /// A second signal came during the drain: the caller should exit at once.
    Abandoned,
}
