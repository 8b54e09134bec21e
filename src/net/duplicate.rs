//! The duplicate-connection rule: may a connection whose peer just
//! greeted us go on? A pure function of what the reactor knows at that
//! moment; the reactor thread calls it from its greeting path
//! (`inbound.rs`) and acts on the [`Decision`].
//!
//! One connection per node pair, without losing what a working
//! connection carries. A second connection is refused at the greeting,
//! before our auth line leaves, so the peer can never complete it either:
//! - If a connection is up, the new one is refused. The peer may have
//!   restarted (same ID, new process) while the old one still looks up,
//!   which the greeting cannot tell from a race; so the old one is
//!   probed: a restarted peer's host answers with a reset, the old
//!   connection fails (its monitors fire: messages to the old process may
//!   be lost) and the peer's next attempt gets through. A node that tries
//!   again after a probe went unanswered (nothing arrived since) for
//!   `connect_interval` while the old connection stays silent replaces it
//!   the same way (a host that vanished): the old one is closed, the new
//!   one refused, and the next attempt connects.
//! - While the previous connection's monitors are still firing, a new
//!   connection is refused (no holes: see `mod.rs`).
//! - Two handshakes: once we sent our auth line on the first, the peer may
//!   already use it, so the new one is refused; before that, the one
//!   opened by the node with the smaller ID is kept, which the peer
//!   decides alike. When the two ends saw the greetings in opposite orders
//!   both may be refused; nothing was established, and the next attempt
//!   connects.

use mio::Token;
use std::time::{Duration, Instant};

/// The link to the peer, as its remote state has it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Link {
    /// No connection up (idle, or attempts running).
    Free,
    /// A lost connection's monitors are firing.
    Settling,
    /// Up over the connection with this token.
    Up(Token),
}

/// The connection a link is up over, as the reactor holds it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Existing {
    /// When bytes last arrived on it.
    pub(super) last_rx: Instant,
    /// When it was last probed because the node connected again.
    pub(super) probed: Option<Instant>,
}

/// Another connection with the peer that passed its greeting and is still
/// in its handshake.
#[derive(Clone, Copy, Debug)]
pub(super) struct Racing {
    /// We sent our auth line on it: the peer may already use it.
    pub(super) auth_sent: bool,
    /// We opened it.
    pub(super) ours: bool,
}

/// What the reactor knows when the peer's greeting arrives on a new
/// connection.
#[derive(Clone, Copy, Debug)]
pub(super) struct Meeting<'a> {
    /// Our node ID.
    pub(super) us: &'a str,
    /// The peer's node ID, from its greeting.
    pub(super) peer: &'a str,
    /// The new connection's token.
    pub(super) this: Token,
    /// We opened the new connection.
    pub(super) ours: bool,
    /// The link to the peer.
    pub(super) link: Link,
    /// The connection of [`Link::Up`], if the reactor holds it.
    pub(super) existing: Option<Existing>,
    /// Another greeted connection with the peer, if any (not `this`).
    pub(super) racing: Option<Racing>,
    pub(super) now: Instant,
    pub(super) connect_interval: Duration,
}

/// What becomes of the new connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Decision {
    /// It goes on.
    Accept,
    /// It goes on; the racing handshake is closed (opened by the wrong
    /// node).
    AcceptCloseRacing,
    /// Connected already: refused; the existing connection is kept and
    /// probed. `mark`: note the probe's time (no probe is waiting for an
    /// answer).
    RefuseKeepExisting { mark: bool },
    /// Connected already, but the existing connection stayed silent since
    /// an earlier probe: it is closed, and the new one refused.
    RefuseSwitch,
    /// The racing handshake is kept.
    RefuseRacing,
    /// The link is up over a connection the reactor does not hold.
    RefuseUnheld,
    /// The link is up over this very connection.
    RefuseSame,
    /// The previous connection's monitors are still firing.
    RefuseStillFiring,
}

impl Decision {
    /// Why the new connection is refused (`None`: it goes on).
    pub(super) fn refusal(self) -> Option<&'static str> {
        match self {
            Decision::Accept | Decision::AcceptCloseRacing => None,
            Decision::RefuseKeepExisting { .. } => {
                Some("simultaneous connection; already connected (probing the old one)")
            }
            Decision::RefuseSwitch => Some("switched connections; the node must connect again"),
            Decision::RefuseRacing | Decision::RefuseUnheld => Some(RACING),
            Decision::RefuseSame => Some("already connected to that node"),
            Decision::RefuseStillFiring => {
                Some("the previous connection to that node is still shutting down")
            }
        }
    }

    /// Whether the link allowed a new connection (the racing handshakes
    /// are weighed after that).
    pub(super) fn link_free(self) -> bool {
        matches!(
            self,
            Decision::Accept | Decision::AcceptCloseRacing | Decision::RefuseRacing
        )
    }
}

/// Whether `why` is one of this rule's refusals (a connection closed by
/// bookkeeping, not by a fault).
pub(super) fn is_refusal(why: &str) -> bool {
    why == RACING
        || why == SWITCHED
        || [
            Decision::RefuseKeepExisting { mark: false },
            Decision::RefuseSwitch,
            Decision::RefuseSame,
            Decision::RefuseStillFiring,
        ]
        .into_iter()
        .any(|d| d.refusal() == Some(why))
}

/// Why the loser of two racing handshakes is closed.
pub(super) const RACING: &str = "simultaneous connection; the other one is kept";

/// Why an existing connection is closed on [`Decision::RefuseSwitch`].
pub(super) const SWITCHED: &str =
    "switched connections: the node connected again and the old connection is silent";

/// The rule (see the module docs).
pub(super) fn decide(m: &Meeting) -> Decision {
    match m.link {
        Link::Settling => Decision::RefuseStillFiring,
        Link::Up(old) if old == m.this => Decision::RefuseSame,
        Link::Up(_) => match m.existing {
            None => Decision::RefuseUnheld,
            Some(e) => {
                let stale = e.probed.is_some_and(|t| {
                    e.last_rx < t && m.now.duration_since(t) >= m.connect_interval
                });
                if stale {
                    Decision::RefuseSwitch
                } else {
                    let mark = e.probed.is_none_or(|t| e.last_rx >= t);
                    Decision::RefuseKeepExisting { mark }
                }
            }
        },
        Link::Free => match m.racing {
            None => Decision::Accept,
            Some(r) if r.auth_sent => Decision::RefuseRacing,
            // Kept: the one opened by the node with the smaller ID.
            Some(r) if r.ours == m.ours || m.ours != (m.us < m.peer) => Decision::RefuseRacing,
            Some(_) => Decision::AcceptCloseRacing,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CI: Duration = Duration::from_millis(500);

    fn meeting(now: Instant, link: Link) -> Meeting<'static> {
        Meeting {
            us: "a",
            peer: "b",
            this: Token(7),
            ours: true,
            link,
            existing: None,
            racing: None,
            now,
            connect_interval: CI,
        }
    }

    /// Another greeted handshake with the peer.
    fn racing(auth_sent: bool, ours: bool) -> Option<Racing> {
        Some(Racing { auth_sent, ours })
    }

    #[test]
    fn free_link_without_race_accepts() {
        let m = meeting(Instant::now(), Link::Free);
        assert_eq!(decide(&m), Decision::Accept);
        assert!(decide(&m).refusal().is_none());
        assert!(decide(&m).link_free());
    }

    #[test]
    fn settling_link_refuses() {
        let mut m = meeting(Instant::now(), Link::Settling);
        m.racing = racing(false, false);
        assert_eq!(decide(&m), Decision::RefuseStillFiring);
        assert!(!decide(&m).link_free());
    }

    #[test]
    fn up_over_this_connection_refuses() {
        let m = meeting(Instant::now(), Link::Up(Token(7)));
        assert_eq!(decide(&m), Decision::RefuseSame);
        assert_eq!(decide(&m).refusal(), Some("already connected to that node"));
    }

    #[test]
    fn up_over_an_unheld_connection_refuses_as_a_race() {
        let m = meeting(Instant::now(), Link::Up(Token(8)));
        assert_eq!(decide(&m), Decision::RefuseUnheld);
        assert_eq!(decide(&m).refusal(), Some(RACING));
        assert!(!decide(&m).link_free());
    }

    /// The decision with the link up over another connection, last read
    /// from `rx_ago` ago and probed `probed_ago` ago.
    fn up(rx_ago: Duration, probed_ago: Option<Duration>) -> Decision {
        let now = Instant::now() + CI * 8;
        let mut m = meeting(now, Link::Up(Token(8)));
        m.existing = Some(Existing {
            last_rx: now - rx_ago,
            probed: probed_ago.map(|d| now - d),
        });
        decide(&m)
    }

    #[test]
    fn up_keeps_the_existing_one_and_probes_it() {
        let keep = |mark| Decision::RefuseKeepExisting { mark };
        // Never probed: the probe's time is noted.
        assert_eq!(up(Duration::ZERO, None), keep(true));
        // An earlier probe was answered: a new one, noted.
        assert_eq!(up(Duration::ZERO, Some(CI * 4)), keep(true));
        // A probe waits for its answer, not yet for `connect_interval`:
        // its time stays.
        assert_eq!(up(CI, Some(CI / 2)), keep(false));
        assert!(!keep(false).link_free());
    }

    #[test]
    fn up_but_silent_since_a_probe_switches() {
        assert_eq!(up(CI * 2, Some(CI)), Decision::RefuseSwitch);
        let why = Decision::RefuseSwitch.refusal().unwrap();
        assert!(why.starts_with("switched"));
    }

    #[test]
    fn race_after_our_auth_line_refuses() {
        let mut m = meeting(Instant::now(), Link::Free);
        // Even the one that would win by ID.
        m.racing = racing(true, false);
        assert_eq!(decide(&m), Decision::RefuseRacing);
        assert!(decide(&m).link_free());
    }

    #[test]
    fn race_keeps_the_one_opened_by_the_smaller_id() {
        let mut m = meeting(Instant::now(), Link::Free);
        let other = |ours| racing(false, ours);
        // We ("a") are smaller: ours wins over theirs, both ways round.
        m.racing = other(false);
        assert_eq!(decide(&m), Decision::AcceptCloseRacing);
        m.ours = false;
        m.racing = other(true);
        assert_eq!(decide(&m), Decision::RefuseRacing);
        // The peer is smaller: theirs wins.
        m.us = "c";
        assert_eq!(decide(&m), Decision::AcceptCloseRacing);
        m.ours = true;
        m.racing = other(false);
        assert_eq!(decide(&m), Decision::RefuseRacing);
    }

    #[test]
    fn race_between_two_of_one_side_refuses_the_new_one() {
        let mut m = meeting(Instant::now(), Link::Free);
        for ours in [true, false] {
            m.ours = ours;
            m.racing = racing(false, ours);
            assert_eq!(decide(&m), Decision::RefuseRacing);
        }
    }

    #[test]
    fn both_ends_agree_on_a_race() {
        // The same two connections, seen from each end: exactly one end
        // keeps the one it greets second, and they keep the same one.
        let now = Instant::now();
        for a_opened_new in [true, false] {
            let at_a = Meeting {
                racing: racing(false, !a_opened_new),
                ours: a_opened_new,
                ..meeting(now, Link::Free)
            };
            let at_b = Meeting {
                us: "b",
                peer: "a",
                ours: !a_opened_new,
                racing: racing(false, a_opened_new),
                ..meeting(now, Link::Free)
            };
            // "a" is smaller: the connection "a" opened is kept at both.
            let kept_new = a_opened_new;
            let want = if kept_new {
                Decision::AcceptCloseRacing
            } else {
                Decision::RefuseRacing
            };
            assert_eq!(decide(&at_a), want);
            assert_eq!(decide(&at_b), want);
        }
    }

    #[test]
    fn refusals_are_told_from_faults() {
        for d in [
            Decision::RefuseKeepExisting { mark: true },
            Decision::RefuseSwitch,
            Decision::RefuseRacing,
            Decision::RefuseUnheld,
            Decision::RefuseSame,
            Decision::RefuseStillFiring,
        ] {
            assert!(is_refusal(d.refusal().unwrap()), "{d:?}");
        }
        assert!(is_refusal(SWITCHED));
        assert!(!is_refusal("authentication failure from x: token mismatch"));
        assert!(!is_refusal("connection refused"));
    }
}
