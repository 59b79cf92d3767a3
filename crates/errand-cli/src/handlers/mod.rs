//! The handlers `errand.toml` can configure, one file each, and their registration on a
//! worker pool.

pub mod command;
pub mod http;

use crate::config::{Config, Handler};
use command::CommandHandler;
use errand::worker::{JobContext, WorkerBuilder};
use http::HttpHandler;
use std::sync::Arc;

/// Registers a handler for every configured task this process runs (remote tasks run
/// elsewhere). Their timeouts and backoffs come from the client's task settings, which the
/// pool is built with.
pub fn register_all(mut builder: WorkerBuilder, config: &Config) -> anyhow::Result<WorkerBuilder> {
    let mut http_client = None;
    for (kind, task) in &config.tasks {
        builder = match &task.handler {
            Handler::Command { argv } => {
                let handler = Arc::new(
                    CommandHandler::new(argv.clone(), config.workers.cancel_grace)
                        .with_lease(config.workers.lease),
                );
                builder.register_kind(kind.clone(), move |ctx: JobContext, args| {
                    let handler = handler.clone();
                    async move { handler.run(ctx, args).await }
                })
            }
            Handler::Http { url, headers } => {
                let client = match &http_client {
                    Some(c) => c,
                    None => http_client.insert(HttpHandler::client()?),
                };
                let handler = Arc::new(HttpHandler::new(client.clone(), url, headers)?);
                builder.register_kind(kind.clone(), move |ctx: JobContext, args| {
                    let handler = handler.clone();
                    async move { handler.run(ctx, args).await }
                })
            }
            Handler::Remote => builder,
        };
    }
    Ok(builder)
}
