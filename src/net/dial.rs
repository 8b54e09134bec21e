//! Dialing, on the reactor thread: connection attempts to one node as
//! the reactor keeps them ([`Dial`]), their timing (addresses in turn,
//! `connect_interval` apart, spread so that every known address gets a
//! turn before `monitor_timeout`, ±10% jitter), and the reactor's side of
//! them: the dialing timers (turns, the connect timeout that fires the
//! node's monitors, the end of the attempts), starting a TCP connect, and
//! a failed attempt's earlier retry. The handshake that follows is
//! `inbound.rs`'s.

use super::conn::Phase;
use super::reactor::Reactor;
use super::remote::{DialState, Remote};
use super::PeerEvent;
use mio::net::TcpStream;
use mio::Token;
use std::net::SocketAddr;
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

/// The reactor's dialing (on the reactor thread).
impl Reactor {
    /// The dialing timers: attempts whose turn came, connect timeouts,
    /// attempts that ran out of time.
    pub(super) fn dial_timers(&mut self, now: Instant) {
        let due: Vec<String> = self
            .dials
            .iter()
            .filter(|(_, d)| {
                d.next_at <= now || d.deadline <= now || d.fire_at.is_some_and(|t| t <= now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(dial) = self.dials.remove(&key) else {
                continue;
            };
            if let Some(dial) = self.dial_due(&key, dial, now) {
                self.dials.insert(key, dial);
            }
        }
    }

    /// When the dialing timers are due next.
    pub(super) fn dial_deadline(&self) -> Option<Instant> {
        self.dials
            .iter()
            .map(|(k, d)| {
                if self.dial_busy(k, d) {
                    d.deadline
                } else {
                    d.next_at
                        .min(d.deadline)
                        .min(d.fire_at.unwrap_or(d.deadline))
                }
            })
            .min()
    }

    /// A dial whose timer is due (taken out of `dials`): fires its
    /// monitors on a connect timeout, starts its next attempt in its turn.
    /// Returns it while the attempts go on.
    fn dial_due(&mut self, key: &str, mut dial: Dial, now: Instant) -> Option<Dial> {
        let link = dial.remote.dial_state();
        if link == DialState::Up || (link != DialState::Connecting && dial.fire_at.is_some()) {
            // Connected, or no longer wanted.
            return None;
        }
        let busy = self.dial_busy(key, &dial);
        let over = dial.deadline <= now;
        let fire = dial.fire_at.is_some_and(|t| t <= now) && !busy;
        if link == DialState::Connecting && (over || fire) {
            // No connection within `connect_interval`: the monitors
            // fire and the queue goes (a handshake under way gets its
            // own time first). The attempts go on until
            // `monitor_timeout`, so the node is connected when it
            // comes up.
            self.net.fail(&dial.remote, None, "connect timeout");
            dial.fire_at = None;
        }
        if over {
            return None;
        }
        if busy || dial.next_at > now || link == DialState::Settling {
            // Not its turn; or a handshake with the node is under way
            // (a second connection would only race it); or its
            // monitors are firing (a connection must wait for them).
            return Some(dial);
        }
        self.next_attempt(key, &mut dial, now);
        Some(dial)
    }

    /// The dial's turn: gives up on the previous attempt, asks for
    /// addresses when none are known (or every known one was tried),
    /// connects to the next address.
    fn next_attempt(&mut self, key: &str, dial: &mut Dial, now: Instant) {
        if let Some(t) = dial.attempt.take() {
            // Still connecting after its turn: give up on that address.
            if let Some(c) = self.conns.remove(t) {
                self.finish(t, c, "no answer within connect_interval");
            }
        }
        let known = self
            .net
            .addresses
            .lock()
            .get(key)
            .cloned()
            .unwrap_or_default();
        if known.is_empty() || (dial.next > 0 && dial.next % known.len() == 0) {
            // Discovery: ask the master for its listen addresses (also
            // when every known one was tried: they may be stale).
            self.net
                .events()
                .event(&self.net, PeerEvent::NeedAddress(key));
        }
        if !known.is_empty() {
            let (text, addr) = known[dial.next % known.len()].clone();
            dial.next += 1;
            dial.attempt = self.start_connect(addr, text, Some(dial.remote.clone()));
        }
        dial.next_at = now
            + spacing(
                self.net.connect_interval,
                self.net.monitor_timeout,
                known.len(),
            );
    }

    /// A connection attempt to `node` ended without a connection (refused,
    /// or closed in the handshake, e.g. while the node's end of a lost
    /// connection still fires its monitors): before the connect timeout,
    /// the next attempt comes sooner than `connect_interval`, so that one
    /// refusal does not use up the whole time.
    pub(super) fn attempt_failed(&mut self, node: &str, token: Token) {
        let soon = Instant::now() + jitter(self.net.connect_interval / 4);
        if let Some(d) = self.dials.get_mut(node) {
            if d.attempt == Some(token) && d.fire_at.is_some() {
                d.next_at = d.next_at.min(soon);
            }
        }
    }

    /// Whether a handshake with the dialed node is running: our latest
    /// attempt past its TCP connect, or a connection from the node.
    fn dial_busy(&self, key: &str, dial: &Dial) -> bool {
        let ours = dial
            .attempt
            .and_then(|t| self.conns.get(t))
            .is_some_and(|c| !c.tcp_connecting);
        let theirs = self
            .greeted
            .get(key)
            .and_then(|&t| self.conns.get(t))
            .is_some_and(|c| matches!(c.phase, Phase::Handshake(_)));
        ours || theirs
    }

    pub(super) fn start_connect(
        &mut self,
        addr: SocketAddr,
        text: String,
        expected: Option<Arc<Remote>>,
    ) -> Option<Token> {
        match TcpStream::connect(addr) {
            Ok(sock) => self.add_conn(sock, text, Some(expected), None),
            Err(e) => {
                log::info!("{}: cannot connect to {text}: {e}", self.net.id);
                None
            }
        }
    }
}
