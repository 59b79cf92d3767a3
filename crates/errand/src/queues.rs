//! Which queue names an operator action may name: `default` (where a job goes when it names
//! no queue), one the configuration declares, or one the store knows (it has jobs, or a row
//! from an earlier pause or resume). Any other name is most
//! likely a typo, and pausing it would leave a paused queue that nobody declared, so the CLI
//! (`errand queues pause`) and the HTTP API (`POST /v1/queues/{name}/pause`) both ask
//! [`Client::check_queue_known`] first, unless the caller forces the action.

use crate::{Client, Error};

/// Most known names an [`Error::UnknownQueue`] lists.
const LISTED: usize = 20;

impl Client {
    /// Ok if `queue` is `default`, is in `declared` (the configuration's queues), or the store
    /// knows it;
    /// [`Error::UnknownQueue`] with the known names otherwise. Checks the name first
    /// ([`Error::Invalid`]).
    pub async fn check_queue_known(&self, queue: &str, declared: &[String]) -> Result<(), Error> {
        errand_core::validate::validate_queue_name(queue)?;
        if queue == errand_core::validate::DEFAULT_QUEUE || declared.iter().any(|q| q == queue) {
            return Ok(());
        }
        let mut known: Vec<String> = self
            .queue_stats()
            .await?
            .into_iter()
            .map(|s| s.queue)
            .chain(self.queues().await?.into_iter().map(|q| q.name))
            .chain(declared.iter().cloned())
            .collect();
        known.sort();
        known.dedup();
        if known.iter().any(|q| q == queue) {
            return Ok(());
        }
        known.truncate(LISTED);
        Err(Error::UnknownQueue {
            queue: queue.to_string(),
            known,
        })
    }
}
