//! Where each queue's claims start: a per-queue cursor, so that a claim does not walk the
//! index entries of the jobs earlier claims took.
//!
//! # Why
//!
//! A claim reads `errand_jobs_claim` (partial on `status = 'queued'`) in claim order. A job
//! it starts leaves that index only when vacuum removes its entry; until then every later
//! claim steps over the entry (and, if no scan could mark it dead yet, visits its row). While
//! any session holds an old snapshot (a long report, an idle `REPEATABLE READ` transaction),
//! nothing can be removed or marked, so each claim of a draining backlog walks every entry
//! from the head of the queue to the first live one: the walk grows with what was drained
//! (17 ms and 2,278 buffers for 100 jobs at 90,000 drained, see docs/benchmarks.md).
//!
//! # What
//!
//! The store remembers, per queue, the claim-order position `(priority, run_at, id)` of the
//! last job a claim took, and the next claim reads, in this order, up to its limit:
//!
//! 1. jobs of a higher priority than the cursor's, from the head (new urgent work is never
//!    passed over);
//! 2. jobs of the cursor's priority after the cursor (the common case: one index descent,
//!    no walk);
//! 3. jobs of the cursor's priority at or before the cursor, from the head (what became
//!    ready behind the cursor; read only when 1 and 2 came up short, so a short claim still
//!    sees the whole queue);
//! 4. jobs of a lower priority.
//!
//! A claim that returns fewer jobs than asked has therefore looked at every ready job. A
//! claim that filled up from 1 and 2 may have passed over a job that became ready behind the
//! cursor (one whose transaction committed late with an earlier `run_at`, an explicit
//! `run_at` in the past, a job a failed claim left queued). So that such a job waits a
//! bounded time while a backlog drains, a claim starts from the head, as if there were no
//! cursor, when the last head claim is [`HEAD_EVERY`] old. That is the one ordering
//! trade-off: within a priority, a job that became ready behind jobs already started can be
//! passed over for up to [`HEAD_EVERY`] while the queue has a backlog. What this process
//! itself puts behind a cursor (an enqueue at an explicit time already past, a rescue requeue)
//! sends the queue back to the head at once ([`Cursors::forget`]), and an epoch keeps claims
//! already in flight from setting a cursor past it again ([`Cursors::record`]).
//!
//! The cursor is this process's: each worker process learns it from its own claims, and
//! nothing of it is stored. Losing it (a restart) costs one walk.

use chrono::{DateTime, Utc};
use errand_core::{ClaimedJob, JobId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a queue's claims may continue from its cursor before one starts from the head.
pub(crate) const HEAD_EVERY: Duration = Duration::from_secs(1);

/// A claim-order position: higher priority first, then earlier `run_at`, then lower id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) priority: i32,
    pub(crate) run_at: DateTime<Utc>,
    pub(crate) id: JobId,
}

impl Position {
    /// The order claims take jobs in, as a sortable key.
    fn key(&self) -> (std::cmp::Reverse<i32>, DateTime<Utc>, JobId) {
        (std::cmp::Reverse(self.priority), self.run_at, self.id)
    }

    /// The position of the last of `jobs` in claim order.
    pub(crate) fn last_of(jobs: &[ClaimedJob]) -> Option<Position> {
        jobs.iter()
            .map(|c| Position {
                priority: c.job.priority,
                run_at: c.job.run_at,
                id: c.job.id,
            })
            .max_by_key(Position::key)
    }
}

/// Where the next claim of a queue starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// From the head of the queue.
    Head,
    /// From this position (see the module doc for the order).
    After(Position),
}

#[derive(Debug)]
struct Entry {
    position: Position,
    head_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    queues: HashMap<String, Entry>,
    /// Bumped by every change a claim already in flight must not undo: a forget, and a head
    /// claim's record (which may have moved a cursor back).
    epoch: u64,
}

/// A claim's start, and the state it was decided in (see [`Cursors::record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) start: Start,
    epoch: u64,
}

/// The cursors of one store, per queue.
#[derive(Debug, Default)]
pub(crate) struct Cursors {
    state: Mutex<State>,
}

impl Cursors {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where a claim of `queue` made at `now` starts.
    pub(crate) fn start(&self, queue: &str, now: Instant) -> Ticket {
        let state = self.lock();
        let start = match state.queues.get(queue) {
            Some(e) if now.saturating_duration_since(e.head_at) < HEAD_EVERY => {
                Start::After(e.position)
            }
            _ => Start::Head,
        };
        Ticket {
            start,
            epoch: state.epoch,
        }
    }

    /// Drops `queue`'s cursor: a job was made ready where it may lie behind it, so the next
    /// claim starts from the head (and no claim in flight sets a cursor again).
    pub(crate) fn forget(&self, queue: &str) {
        let mut state = self.lock();
        state.queues.remove(queue);
        state.epoch += 1;
    }

    /// Drops every queue's cursor (see [`Cursors::forget`]).
    pub(crate) fn forget_all(&self) {
        let mut state = self.lock();
        state.queues.clear();
        state.epoch += 1;
    }

    /// Records what a claim with `ticket` (decided at `now`) took. A head claim sets the
    /// cursor where it stopped, even behind the current one (the jobs it found there had been
    /// passed over); a cursor claim only moves it forward (claims in flight side by side
    /// finish in any order). A claim that took nothing leaves it as it was.
    ///
    /// Neither is recorded if a forget or a head claim's record happened since the claim
    /// started: a claim that started before them may have passed over what they left behind
    /// the cursor, and moving the cursor past it again would leave it there until the next
    /// head claim.
    pub(crate) fn record(&self, queue: &str, ticket: Ticket, now: Instant, last: Option<Position>) {
        let mut state = self.lock();
        let Some(position) = last else { return };
        if state.epoch != ticket.epoch {
            return;
        }
        match ticket.start {
            Start::Head => {
                state.queues.insert(
                    queue.to_string(),
                    Entry {
                        position,
                        head_at: now,
                    },
                );
                state.epoch += 1;
            }
            Start::After(_) => {
                if let Some(e) = state.queues.get_mut(queue) {
                    if position.key() > e.position.key() {
                        e.position = position;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn pos(priority: i32, second: i64, id: JobId) -> Position {
        Position {
            priority,
            run_at: Utc.timestamp_opt(1_700_000_000 + second, 0).unwrap(),
            id,
        }
    }

    /// A head claim of `queue` at `t` that took jobs up to `last`.
    fn head_claim(c: &Cursors, queue: &str, t: Instant, last: Position) {
        let ticket = c.start(queue, t + HEAD_EVERY * 1000);
        assert_eq!(ticket.start, Start::Head);
        c.record(queue, ticket, t, Some(last));
    }

    #[test]
    fn a_queue_without_a_cursor_starts_at_the_head() {
        let c = Cursors::default();
        assert_eq!(c.start("q", Instant::now()).start, Start::Head);
    }

    #[test]
    fn after_a_head_claim_claims_continue_from_where_it_stopped() {
        let c = Cursors::default();
        let t = Instant::now();
        head_claim(&c, "q", t, pos(0, 5, 50));
        assert_eq!(c.start("q", t).start, Start::After(pos(0, 5, 50)));
        assert_eq!(
            c.start("other", t).start,
            Start::Head,
            "cursors are per queue"
        );
    }

    #[test]
    fn a_claim_that_took_nothing_leaves_the_queue_as_it_was() {
        let c = Cursors::default();
        let t = Instant::now();
        let ticket = c.start("q", t);
        c.record("q", ticket, t, None);
        assert_eq!(c.start("q", t).start, Start::Head);
        head_claim(&c, "q", t, pos(0, 5, 50));
        let ticket = c.start("q", t);
        c.record("q", ticket, t, None);
        assert_eq!(c.start("q", t).start, Start::After(pos(0, 5, 50)));
    }

    #[test]
    fn cursor_claims_only_move_forward_in_claim_order() {
        let c = Cursors::default();
        let t = Instant::now();
        head_claim(&c, "q", t, pos(0, 5, 50));
        let ticket = c.start("q", t);
        c.record("q", ticket, t, Some(pos(0, 4, 90)));
        assert_eq!(
            c.start("q", t).start,
            Start::After(pos(0, 5, 50)),
            "earlier run_at"
        );
        c.record("q", ticket, t, Some(pos(0, 5, 60)));
        assert_eq!(
            c.start("q", t).start,
            Start::After(pos(0, 5, 60)),
            "same run_at, higher id"
        );
        c.record("q", ticket, t, Some(pos(-1, 1, 1)));
        assert_eq!(
            c.start("q", t).start,
            Start::After(pos(-1, 1, 1)),
            "lower priority is later"
        );
        c.record("q", ticket, t, Some(pos(3, 9, 9)));
        assert_eq!(
            c.start("q", t).start,
            Start::After(pos(-1, 1, 1)),
            "higher priority is earlier"
        );
    }

    #[test]
    fn a_head_claim_may_move_the_cursor_back() {
        let c = Cursors::default();
        let t = Instant::now();
        head_claim(&c, "q", t, pos(0, 5, 50));
        head_claim(&c, "q", t, pos(0, 2, 7));
        assert_eq!(c.start("q", t).start, Start::After(pos(0, 2, 7)));
    }

    #[test]
    fn cursor_claims_in_flight_do_not_undo_a_head_claim_that_moved_the_cursor_back() {
        let c = Cursors::default();
        let t = Instant::now();
        head_claim(&c, "q", t, pos(0, 5, 50));
        let in_flight = c.start("q", t);
        // A head claim found jobs behind the cursor and took some of them.
        head_claim(&c, "q", t, pos(0, 2, 7));
        // The cursor claim that started before it finishes later, further on: not recorded,
        // or the rest of what the head claim found would wait for the next head claim.
        c.record("q", in_flight, t, Some(pos(0, 6, 60)));
        assert_eq!(c.start("q", t).start, Start::After(pos(0, 2, 7)));
        // Claims that start from the new cursor move it on.
        let next = c.start("q", t);
        c.record("q", next, t, Some(pos(0, 3, 8)));
        assert_eq!(c.start("q", t).start, Start::After(pos(0, 3, 8)));
    }

    #[test]
    fn every_head_every_a_claim_starts_at_the_head_again() {
        let c = Cursors::default();
        let t = Instant::now();
        head_claim(&c, "q", t, pos(0, 5, 50));
        let ticket = c.start("q", t + HEAD_EVERY / 2);
        assert!(matches!(ticket.start, Start::After(_)));
        // Cursor claims do not postpone the next head claim.
        c.record("q", ticket, t + HEAD_EVERY / 2, Some(pos(0, 6, 60)));
        assert_eq!(c.start("q", t + HEAD_EVERY).start, Start::Head);
    }

    #[test]
    fn after_a_forget_no_claim_in_flight_sets_a_cursor_again() {
        let c = Cursors::default();
        let t = Instant::now();
        head_claim(&c, "q", t, pos(0, 5, 50));
        head_claim(&c, "r", t, pos(0, 5, 50));
        let cursor_in_flight = c.start("q", t);
        let head_in_flight = c.start("s", t);
        c.forget("q");
        assert_eq!(c.start("q", t).start, Start::Head);
        assert!(
            matches!(c.start("r", t).start, Start::After(_)),
            "other queues keep theirs"
        );
        c.record("q", cursor_in_flight, t, Some(pos(0, 9, 90)));
        assert_eq!(c.start("q", t).start, Start::Head);
        c.forget_all();
        c.record("s", head_in_flight, t, Some(pos(0, 9, 90)));
        assert_eq!(c.start("s", t).start, Start::Head);
        assert_eq!(c.start("r", t).start, Start::Head);
    }

    #[test]
    fn the_last_position_of_a_claim_is_the_latest_in_claim_order() {
        assert!(pos(0, 1, 1).key() < pos(0, 1, 2).key());
        assert!(pos(0, 1, 9).key() < pos(0, 2, 1).key());
        assert!(pos(1, 9, 9).key() < pos(0, 1, 1).key());
    }
}
