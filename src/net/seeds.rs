//! Seeds, the global mesh and discovery: the network's side of the
//! database's topology.
//!
//! - Seeds: addresses the node keeps connecting to, with back-off (the
//!   first (1+rand)·0.6 s, doubling up to `monitor_timeout`; reset when
//!   the seed's node comes up, or any seed is lost). A seed's node is
//!   learned from the greeting of a connection to its address, or
//!   beforehand from known addresses (learned, or the database's `'l` on a
//!   global node), so a seed already connected is not dialed again.
//! - The global mesh: on a global node, the global nodes the database
//!   lists are kept connected.
//! - Discovery: a dial without a usable address publishes
//!   [`NeedAddress`](PeerEvent::NeedAddress) (the database sends `g_find`),
//!   and the answer comes back through [`Net::found`].
//!
//! The rounds (dial due seeds, keep the mesh) run on the reactor thread,
//! on its timer ([`Handle::seeds_due`](super::reactor::Handle::seeds_due)
//! asks for one now). Lock order: the seeds' lock, then the subscriber's
//! (peer events are published under it), then a remote's or the address
//! book's; the mesh list's lock is taken alone.

use super::events::PeerEvent;
use super::Net;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One seed address and its connection attempts.
struct Seed {
    text: String,
    addrs: Vec<SocketAddr>,
    /// The node that answered there.
    node: Option<String>,
    next_at: Instant,
    backoff: Duration,
}

#[derive(Default)]
struct State {
    seeds: Vec<Seed>,
    /// Node IDs found at seed addresses.
    seed_nodes: HashSet<String>,
    /// Connected nodes, and whether the subscriber was told they are seeds.
    up: HashMap<String, bool>,
}

/// The seeds and the global mesh of one node.
#[derive(Default)]
pub(crate) struct Seeds {
    st: Mutex<State>,
    /// Global nodes to keep connections to (on a global node).
    mesh: Mutex<Vec<String>>,
}

/// The first back-off: (1+rand)·0.6 s, at most `cap`.
fn first_backoff(cap: Duration) -> Duration {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    let f = 1.0 + f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX);
    Duration::from_secs_f64(0.6 * f).min(cap)
}

impl Net {
    /// Seeds are resolved (DNS here, on the caller's thread); the node
    /// becomes global if one of them is its own listen address.
    pub(crate) fn add_seeds(&self, seeds: &[(String, Vec<SocketAddr>)]) {
        let own = |a: &SocketAddr| {
            self.listen.iter().any(|l| {
                l.port() == a.port()
                    && (l.ip() == a.ip()
                        || (l.ip().is_unspecified() && (a.ip().is_loopback() || a.ip() == l.ip())))
            })
        };
        let mut st = self.seeds.st.lock();
        let mut global = false;
        let now = Instant::now();
        for (text, addrs) in seeds {
            if addrs.iter().any(own) {
                global = true;
                continue;
            }
            if st.seeds.iter().any(|s| s.text == *text) {
                continue;
            }
            st.seeds.push(Seed {
                text: text.clone(),
                addrs: addrs.clone(),
                node: None,
                next_at: now,
                backoff: first_backoff(self.monitor_timeout),
            });
        }
        if global {
            self.events.event(self, PeerEvent::OwnSeed);
        }
        drop(st);
        self.reactor.seeds_due();
    }

    /// Our connection to seed address `text` reached node `node` (greeting
    /// line 1).
    pub(crate) fn seed_greeted(&self, text: &str, node: &str) {
        let mut st = self.seeds.st.lock();
        let mut is_seed = false;
        for s in st.seeds.iter_mut().filter(|s| s.text == text) {
            s.node = Some(node.to_string());
            is_seed = true;
        }
        if !is_seed {
            return;
        }
        st.seed_nodes.insert(node.to_string());
        // Connected already (the seed dialed us first): tell the
        // subscriber now that it is a seed.
        if let Some(told) = st.up.get_mut(node) {
            if !*told {
                *told = true;
                self.events.event(self, PeerEvent::IsSeed(node));
            }
        }
    }

    /// A connection to `node` completed.
    pub(crate) fn peer_up(&self, node: &str) {
        let mut st = self.seeds.st.lock();
        let seed = st.seed_nodes.contains(node);
        st.up.insert(node.to_string(), seed);
        self.events.event(self, PeerEvent::Up { node, seed });
        for s in st.seeds.iter_mut() {
            if s.node.as_deref() == Some(node) {
                s.backoff = first_backoff(self.monitor_timeout);
            }
        }
        drop(st);
        // Maybe an unidentified seed: look again before dialing it.
        self.reactor.seeds_due();
    }

    /// The connection to `node` is gone (runs on the dispatcher).
    pub(crate) fn peer_down(&self, node: &str) {
        let mut st = self.seeds.st.lock();
        st.up.remove(node);
        self.events.event(self, PeerEvent::Down(node));
        let mut seed = false;
        let now = Instant::now();
        // Any seed loss restarts the attempts.
        for s in st.seeds.iter_mut() {
            s.backoff = first_backoff(self.monitor_timeout);
            if s.node.as_deref() == Some(node) {
                seed = true;
                s.next_at = now + s.backoff;
            }
        }
        drop(st);
        if seed {
            self.reactor.seeds_due();
        }
    }

    /// The global nodes to keep connections to (the database's `'g` on a
    /// global node): connects to them now, and again in each round.
    pub(crate) fn keep_connected(&self, globals: Vec<String>) {
        for g in &globals {
            self.ensure_connection(g);
        }
        *self.seeds.mesh.lock() = globals;
    }

    /// The answer to a [`NeedAddress`](PeerEvent::NeedAddress) for `who`:
    /// its listen addresses, or `None` if unknown; `authoritative` (a
    /// global node, which knows every listener): unknown means
    /// unreachable, and the dial fails at once (a slave's dial keeps
    /// asking until `monitor_timeout`).
    pub(crate) fn found(&self, who: &str, addresses: Option<Vec<String>>, authoritative: bool) {
        let Some(list) = addresses else {
            if authoritative {
                log::info!("{}: no known address for node {who}", self.id);
                let remote = self.remotes.read().get(who).cloned();
                if let Some(r) = remote {
                    self.fail(&r, None, "no known address");
                }
            } else {
                log::debug!("{}: the master does not know node {who}", self.id);
            }
            return;
        };
        let count = || self.addresses.lock().get(who).map_or(0, Vec::len);
        let before = count();
        for text in list {
            // Only literal ip:port: no DNS on this path.
            match text.parse::<SocketAddr>() {
                Ok(a) => self.learn(who, &text, vec![a]),
                Err(_) => log::debug!("{}: ignoring address {text:?} found for {who}", self.id),
            }
        }
        // Only new addresses hurry the dial: a second attempt overlapping
        // a working one would make the peer replace the connection.
        if count() > before {
            self.reactor.poke(who.to_string());
        }
    }

    /// One round: connect to due seeds, keep the global mesh; returns when
    /// to look again (runs on the reactor thread).
    pub(crate) fn seeds_round(&self) -> Instant {
        let now = Instant::now();
        let mut next = now + self.monitor_timeout.max(Duration::from_millis(100));
        let mut st = self.seeds.st.lock();
        let st = &mut *st;
        // A seed whose node we can tell from known addresses and that is
        // connected already is not dialed: a second connection would only
        // be refused (and make both ends probe the working one).
        for i in 0..st.seeds.len() {
            if st.seeds[i].node.is_some() {
                continue;
            }
            let Some(n) = self.identify(&st.seeds[i].addrs) else {
                continue;
            };
            if let Some(told) = st.up.get_mut(&n) {
                st.seeds[i].node = Some(n.clone());
                st.seed_nodes.insert(n.clone());
                if !*told {
                    *told = true;
                    self.events.event(self, PeerEvent::IsSeed(&n));
                }
            }
        }
        for s in st.seeds.iter_mut() {
            if s.node.as_ref().is_some_and(|n| st.up.contains_key(n)) {
                continue;
            }
            if s.next_at <= now {
                log::debug!("{}: connecting to seed {}", self.id, s.text);
                self.reactor.connect(s.text.clone(), s.addrs.clone());
                s.next_at = now + s.backoff;
                s.backoff = (s.backoff * 2).min(self.monitor_timeout);
            }
            next = next.min(s.next_at);
        }
        let mesh = self.seeds.mesh.lock().clone();
        for g in mesh.iter().filter(|g| !st.up.contains_key(*g)) {
            self.ensure_connection(g);
        }
        next
    }

    /// The node at a seed's addresses, if known: from the addresses
    /// learned for nodes, or from the subscriber (`'l` on a global node).
    fn identify(&self, addrs: &[SocketAddr]) -> Option<String> {
        let learned = self.addresses.lock().iter().find_map(|(node, list)| {
            list.iter()
                .any(|(_, a)| addrs.contains(a))
                .then(|| node.clone())
        });
        learned.or_else(|| self.events.node_at(addrs))
    }

    /// The addresses to advertise: the listen addresses, `*` expanded to
    /// every local IPv4 address of the host (as the original), loopback
    /// last.
    /// Why the latest attempt at one of the seeds failed (`"SEED: why"`),
    /// if one did and none is connected since.
    pub(crate) fn seed_failure(&self) -> Option<String> {
        let texts: Vec<String> = self
            .seeds
            .st
            .lock()
            .seeds
            .iter()
            .map(|s| s.text.clone())
            .collect();
        texts
            .into_iter()
            .find_map(|t| self.last_failure(&t).map(|why| format!("{t}: {why}")))
    }

    pub(crate) fn advertised(&self) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.listen {
            if a.ip().is_unspecified() {
                let mut ips = local_ipv4();
                ips.sort_by_key(|ip| ip.is_loopback());
                for ip in ips {
                    out.push(SocketAddr::new(ip.into(), a.port()).to_string());
                }
            } else {
                out.push(a.to_string());
            }
        }
        out
    }
}

/// The IPv4 addresses of the host's interfaces (loopback at least).
fn local_ipv4() -> Vec<std::net::Ipv4Addr> {
    let mut out = Vec::new();
    let list = if_addrs::get_if_addrs().unwrap_or_else(|e| {
        log::warn!("cannot list the network interfaces: {e}");
        Vec::new()
    });
    for ifa in list {
        if let if_addrs::IfAddr::V4(v4) = ifa.addr {
            if !out.contains(&v4.ip) {
                out.push(v4.ip);
            }
        }
    }
    if out.is_empty() {
        out.push(std::net::Ipv4Addr::LOCALHOST);
    }
    out
}
