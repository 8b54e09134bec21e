//! Connection attempts to one node, as the reactor keeps them, and their
//! timing: addresses in turn, `connect_interval` apart (spread so that
//! every known address gets a turn before `monitor_timeout`), ±10%
//! jitter.

use super::remote::Remote;
use mio::Token;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connection attempts to one node.
pub(super) struct Dial {
    pub(super) remote: Arc<Remote>,
    /// Index of the next address to try.
    pub(super) next: usize,
    pub(super) next_at: Instant,
    /// When the node's monitors fire if no connection is up yet: the
    /// "connect timeout", `connect_interval` after the attempts began (as
    /// Perl 2.02). `None` once they fired; the attempts go on.
    pub(super) fire_at: Option<Instant>,
    /// When the attempts stop: `monitor_timeout` after the latest wish
    /// to connect.
    pub(super) deadline: Instant,
    /// The connection of the latest attempt.
    pub(super) attempt: Option<Token>,
}

impl Dial {
    /// Attempts to `remote` starting now.
    pub(super) fn new(remote: Arc<Remote>, now: Instant, mt: Duration) -> Dial {
        Dial {
            remote,
            next: 0,
            next_at: now,
            fire_at: None,
            deadline: now + mt,
            attempt: None,
        }
    }

    /// A new wish to connect: the attempts go on until `monitor_timeout`
    /// from now, and (attempts still running after an earlier time-out)
    /// it gets its own connect timeout.
    pub(super) fn wish(&mut self, now: Instant, ci: Duration, mt: Duration) {
        self.fire_at.get_or_insert(now + ci.min(mt));
        self.deadline = self.deadline.max(now + mt);
    }
}

/// `base` ±10%, so that two nodes dialing each other drift apart.
pub(super) fn jitter(base: Duration) -> Duration {
    // Cheap jitter from the clock: no need for good randomness here.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base.mul_f64(0.9 + f64::from(nanos % 1000) / 5000.0)
}

/// The delay before the next attempt with `n` known addresses:
/// `min(connect_interval, (monitor_timeout - connect_interval) / n)`,
/// ±10% jitter (as the original), so all addresses get a turn.
pub(super) fn spacing(ci: Duration, mt: Duration, n: usize) -> Duration {
    let share = mt.saturating_sub(ci) / n.max(1) as u32;
    jitter(if share.is_zero() { ci } else { ci.min(share) })
}
