//! The handlers a task definition can name, one file each, and their registration on a
//! worker pool.

pub mod command;
pub mod http;
pub mod tls;

use crate::settings::{Handler, TaskDefinition, WorkerSettings};
use crate::RuntimeError;
use command::CommandHandler;
use errand::worker::{JobContext, WorkerBuilder};
use http::HttpHandler;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tls::HttpTls;

/// The program a command attempt's guard runs as: this process's own executable by default
/// (`/proc/self/exe`, the running binary even if its file was replaced since), or the one the
/// runtime names.
#[derive(Debug, Clone)]
pub struct GuardProgram(Option<Arc<Path>>);

impl GuardProgram {
    /// `None`: this process's executable.
    pub fn new(program: Option<PathBuf>) -> Self {
        GuardProgram(program.map(Arc::from))
    }

    /// The program to execute.
    pub fn path(&self) -> &Path {
        self.0
            .as_deref()
            .unwrap_or_else(|| Path::new(crate::guard::SELF_EXE))
    }

    /// Whether it is this process's own executable.
    pub fn is_self(&self) -> bool {
        self.0.is_none()
    }
}

/// Registers a handler for every task this process runs (remote tasks run elsewhere). Their
/// timeouts and backoffs come from the client's task settings, which the pool is built with.
pub fn register_all(
    mut builder: WorkerBuilder,
    tasks: &BTreeMap<String, TaskDefinition>,
    workers: &WorkerSettings,
    guard: &GuardProgram,
) -> Result<WorkerBuilder, RuntimeError> {
    // One client per TLS setting, shared by the tasks that have it (pooled connections).
    let mut http_clients: HashMap<HttpTls, reqwest::Client> = HashMap::new();
    for (kind, task) in tasks {
        let setup = |problem: String| RuntimeError::Handler {
            kind: kind.clone(),
            problem,
        };
        builder = match &task.handler {
            Handler::Command { argv } => {
                let handler = Arc::new(
                    CommandHandler::new(argv.clone(), workers.cancel_grace)
                        .with_lease(workers.lease)
                        .with_guard(guard.clone()),
                );
                builder.register_kind(kind.clone(), move |ctx: JobContext, args| {
                    let handler = handler.clone();
                    async move { handler.run(ctx, args).await }
                })
            }
            Handler::Http { url, headers, tls } => {
                if tls.insecure_skip_verify {
                    tracing::warn!(
                        task = %kind,
                        "INSECURE: tasks.{kind}.http.insecure_skip_verify = true: the server's \
                         certificate is not checked, so anyone on the path can read and change \
                         this task's requests. For development only"
                    );
                }
                let client = match http_clients.get(tls) {
                    Some(c) => c.clone(),
                    None => {
                        let c = HttpHandler::client(tls).map_err(setup)?;
                        http_clients.insert(tls.clone(), c.clone());
                        c
                    }
                };
                let handler =
                    Arc::new(HttpHandler::new(client.clone(), url, headers).map_err(setup)?);
                builder.register_kind(kind.clone(), move |ctx: JobContext, args| {
                    let handler = handler.clone();
                    async move { handler.run(ctx, args).await }
                })
            }
            // Registered by the embedding program (`Runtime::on_pool`), or run elsewhere.
            Handler::InProcess | Handler::Remote => builder,
        };
    }
    Ok(builder)
}
