//! The glue between the network and the database state machine
//! ([`DbNode`]): seeds (connection attempts with back-off), peer up/down,
//! `g_*` packets in and out, listen addresses in `'l`, the global mesh,
//! discovery (`g_find` for nodes without a known address), and the
//! callbacks of the database API.
//!
//! Lock order: the glue's state lock, then a remote's lock (sending under
//! the state lock keeps the packets of concurrent callers in order).
//! Nothing holding a remote lock calls into the glue. User callbacks run
//! as dispatcher tasks, queued under the state lock (so in event order),
//! never while it is held.

use super::Net;
use crate::db::protocol::{DbMonEvent, DbNode, Event, MonId, QueryId, QueryResult};
use crate::message::Message;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

pub(crate) type QueryCb = Box<dyn FnOnce(QueryResult) + Send>;
pub(crate) type MonCb = Box<dyn FnMut(&DbMonEvent) + Send>;

/// A `db_mon` callback; `cancelled` skips events already queued.
pub(crate) struct MonEntry {
    pub(crate) cancelled: AtomicBool,
    f: Mutex<MonCb>,
}

/// One seed address and its connection attempts.
struct Seed {
    text: String,
    addrs: Vec<SocketAddr>,
    /// The node that answered there.
    node: Option<String>,
    next_at: Instant,
    backoff: Duration,
}

pub(crate) struct State {
    pub(crate) db: DbNode,
    queries: HashMap<QueryId, QueryCb>,
    mons: HashMap<MonId, Arc<MonEntry>>,
    seeds: Vec<Seed>,
    /// Node IDs found at seed addresses.
    seed_nodes: HashSet<String>,
    /// Connected nodes, and whether the database was told they are seeds.
    up: HashMap<String, bool>,
    /// Global nodes to keep connections to (on a global node).
    globals: Vec<String>,
}

pub(crate) struct Glue {
    st: Mutex<State>,
    wake: Sender<()>,
    wake_rx: Receiver<()>,
    stopped: AtomicBool,
    monitor_timeout: Duration,
}

/// The first back-off: (1+rand)·0.6 s, at most `cap`.
fn first_backoff(cap: Duration) -> Duration {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    let f = 1.0 + f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX);
    Duration::from_secs_f64(0.6 * f).min(cap)
}

impl Glue {
    pub(crate) fn new(me: &str, monitor_timeout: Duration) -> Glue {
        let (wake, wake_rx) = crossbeam_channel::unbounded();
        Glue {
            st: Mutex::new(State {
                db: DbNode::new(me),
                queries: HashMap::new(),
                mons: HashMap::new(),
                seeds: Vec::new(),
                seed_nodes: HashSet::new(),
                up: HashMap::new(),
                globals: Vec::new(),
            }),
            wake,
            wake_rx,
            stopped: AtomicBool::new(false),
            monitor_timeout,
        }
    }

    /// Runs `f` on the state, then sends the database's packets and acts
    /// on its events, all under the lock.
    pub(crate) fn with<R>(&self, net: &Net, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.st.lock();
        let r = f(&mut st);
        self.flush(net, &mut st);
        r
    }

    fn flush(&self, net: &Net, st: &mut State) {
        for (to, p) in st.db.take_packets() {
            let msg = Message::from(p.get(1..).unwrap_or(&[]).to_vec());
            net.send(&to, "", msg);
        }
        let events = st.db.take_events();
        if events.is_empty() {
            return;
        }
        let node = net.node();
        for ev in events {
            match ev {
                Event::DbMon(ev) => {
                    let entries: Vec<Arc<MonEntry>> = ev
                        .monitors
                        .iter()
                        .filter_map(|m| st.mons.get(m).cloned())
                        .collect();
                    if let (Some(node), false) = (&node, entries.is_empty()) {
                        node.task(move || {
                            for e in entries {
                                if e.cancelled.load(Ordering::Acquire) {
                                    continue;
                                }
                                let mut f = e.f.lock();
                                if let Err(t) = crate::context::catch(|| f(&ev)) {
                                    log::error!("a db_mon callback panicked: {t}");
                                }
                            }
                        });
                    }
                }
                Event::Reply { query, result } => {
                    if let (Some(cb), Some(node)) = (st.queries.remove(&query), &node) {
                        node.task(move || {
                            if let Err(t) = crate::context::catch(|| cb(result)) {
                                log::error!("a database query callback panicked: {t}");
                            }
                        });
                    }
                }
                Event::Found {
                    node: who,
                    addresses,
                } => match addresses {
                    Some(list) => {
                        let count = |net: &Net| net.addresses.lock().get(&who).map_or(0, Vec::len);
                        let before = count(net);
                        for text in list {
                            // Only literal ip:port: no DNS on this path.
                            match text.parse::<SocketAddr>() {
                                Ok(a) => net.learn(&who, &text, vec![a]),
                                Err(_) => log::debug!(
                                    "{}: ignoring address {text:?} found for {who}",
                                    net.id
                                ),
                            }
                        }
                        // Only new addresses hurry the dial: a second
                        // attempt overlapping a working one would make the
                        // peer replace the connection.
                        if count(net) > before {
                            net.reactor.poke(who);
                        }
                    }
                    // A global node knows every listener: the node is
                    // unreachable, fail at once (a slave's dial keeps
                    // asking until monitor_timeout).
                    None if st.db.is_global() => {
                        log::info!("{}: no known address for node {who}", net.id);
                        let remote = net.remotes.read().get(&who).cloned();
                        if let Some(r) = remote {
                            net.fail(&r, None, "no known address");
                        }
                    }
                    None => log::debug!("{}: the master does not know node {who}", net.id),
                },
                Event::MasterChanged(m) => {
                    log::info!("{}: database master is now {m:?}", net.id)
                }
                Event::BecameGlobal => log::info!("{}: became a global node", net.id),
                Event::Globals(list) => {
                    for g in &list {
                        if !st.up.contains_key(g) {
                            net.ensure_connection(g);
                        }
                    }
                    st.globals = list;
                }
            }
        }
    }

    /// Seeds are resolved (DNS here, on the caller's thread); the node
    /// becomes global if one of them is its own listen address.
    pub(crate) fn add_seeds(&self, net: &Net, seeds: &[(String, Vec<SocketAddr>)]) {
        let own = |a: &SocketAddr| {
            net.listen.iter().any(|l| {
                l.port() == a.port()
                    && (l.ip() == a.ip()
                        || (l.ip().is_unspecified() && (a.ip().is_loopback() || a.ip() == l.ip())))
            })
        };
        let mut global = false;
        {
            let mut st = self.st.lock();
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
        }
        if global {
            self.with(net, |st| st.db.become_global());
        }
        let _ = self.wake.send(());
    }

    /// Publishes our listen addresses in `'l`.
    pub(crate) fn publish_listeners(&self, net: &Net) {
        let mut addrs: Vec<Value> = Vec::new();
        for a in &net.listen {
            if a.ip().is_unspecified() {
                // `*`: every local IPv4 address of the host (as the
                // original), loopback last.
                let mut ips = local_ipv4();
                ips.sort_by_key(|ip| ip.is_loopback());
                for ip in ips {
                    addrs.push(Value::from(
                        SocketAddr::new(ip.into(), a.port()).to_string(),
                    ));
                }
            } else {
                addrs.push(Value::from(a.to_string()));
            }
        }
        if addrs.is_empty() {
            return;
        }
        self.with(net, |st| {
            let me = st.db.node_id().to_string();
            if let Err(e) = st
                .db
                .db_set(crate::db::protocol::LISTENERS, &me, Value::Array(addrs))
            {
                log::warn!("{}: cannot publish listen addresses: {e}", net.id);
            }
        });
    }

    /// Our connection to seed address `text` reached node `node` (greeting
    /// line 1).
    pub(crate) fn seed_greeted(&self, net: &Net, text: &str, node: &str) {
        self.with(net, |st| {
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
            // database now that it is a seed.
            if let Some(told) = st.up.get_mut(node) {
                if !*told {
                    *told = true;
                    st.db.peer_is_seed(node);
                }
            }
        });
    }

    /// A connection to `node` completed.
    pub(crate) fn peer_up(&self, net: &Net, node: &str) {
        self.with(net, |st| {
            let seed = st.seed_nodes.contains(node);
            st.up.insert(node.to_string(), seed);
            st.db.peer_up(node, seed);
            for s in st.seeds.iter_mut() {
                if s.node.as_deref() == Some(node) {
                    s.backoff = first_backoff(self.monitor_timeout);
                }
            }
        });
        // Maybe an unidentified seed: look again before dialing it.
        let _ = self.wake.send(());
    }

    /// The connection to `node` is gone (runs on the dispatcher).
    pub(crate) fn peer_down(&self, net: &Net, node: &str) {
        let seed = self.with(net, |st| {
            st.up.remove(node);
            st.db.peer_down(node);
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
            seed
        });
        if seed {
            let _ = self.wake.send(());
        }
    }

    /// A `g_*` packet from `from`.
    pub(crate) fn packet(&self, net: &Net, from: &str, tag: &str, args: &[Value]) {
        self.with(net, |st| st.db.packet(from, tag, args));
    }

    /// A dial to `node` has no address: ask the master.
    pub(crate) fn want_find(&self, net: &Net, node: &str) {
        self.with(net, |st| st.db.find(node));
    }

    pub(crate) fn add_query(&self, st: &mut State, q: QueryId, cb: QueryCb) {
        st.queries.insert(q, cb);
    }

    pub(crate) fn add_mon(&self, st: &mut State, m: MonId, f: MonCb) -> Arc<MonEntry> {
        let e = Arc::new(MonEntry {
            cancelled: AtomicBool::new(false),
            f: Mutex::new(f),
        });
        st.mons.insert(m, e.clone());
        e
    }

    pub(crate) fn remove_mon(&self, st: &mut State, m: MonId) {
        if let Some(e) = st.mons.remove(&m) {
            e.cancelled.store(true, Ordering::Release);
            st.db.db_mon_stop(m);
        }
    }

    /// Stops the seed thread (the network shut down).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let _ = self.wake.send(());
    }

    /// One round of the seed thread: connect to due seeds, keep the global
    /// mesh; returns when to look again.
    fn round(&self, net: &Net) -> Instant {
        let now = Instant::now();
        let mut next = now + self.monitor_timeout.max(Duration::from_millis(100));
        let mut st = self.st.lock();
        let st = &mut *st;
        // A seed whose node we can tell from known addresses (learned, or
        // `'l` on a global node) and that is connected already is not
        // dialed: a second connection would only be refused (and make both
        // ends probe the working one).
        let unknown: Vec<usize> = (0..st.seeds.len())
            .filter(|&i| st.seeds[i].node.is_none())
            .collect();
        for i in unknown {
            if let Some(n) = identify(net, &st.db, &st.seeds[i]) {
                if let Some(told) = st.up.get_mut(&n) {
                    st.seeds[i].node = Some(n.clone());
                    st.seed_nodes.insert(n.clone());
                    if !*told {
                        *told = true;
                        st.db.peer_is_seed(&n);
                    }
                }
            }
        }
        for s in st.seeds.iter_mut() {
            if s.node.as_ref().is_some_and(|n| st.up.contains_key(n)) {
                continue;
            }
            if s.next_at <= now {
                log::debug!("{}: connecting to seed {}", net.id, s.text);
                net.reactor.connect(s.text.clone(), s.addrs.clone());
                s.next_at = now + s.backoff;
                s.backoff = (s.backoff * 2).min(self.monitor_timeout);
            }
            next = next.min(s.next_at);
        }
        for g in &st.globals {
            if !st.up.contains_key(g) {
                net.ensure_connection(g);
            }
        }
        self.flush(net, st);
        next
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

/// The node at a seed's address, if known: from the addresses learned
/// for nodes, or from `'l` on a global node.
fn identify(net: &Net, db: &DbNode, seed: &Seed) -> Option<String> {
    let learned = net.addresses.lock().iter().find_map(|(node, list)| {
        list.iter()
            .any(|(_, a)| seed.addrs.contains(a))
            .then(|| node.clone())
    });
    if learned.is_some() {
        return learned;
    }
    let store = db.global_store()?;
    store
        .family(crate::db::protocol::LISTENERS)
        .into_iter()
        .find_map(|(node, v)| {
            let hit = v.as_array()?.iter().any(|a| {
                a.as_str()
                    .and_then(|t| t.parse::<SocketAddr>().ok())
                    .is_some_and(|a| seed.addrs.contains(&a))
            });
            hit.then_some(node)
        })
}

/// Starts the seed thread of `net`: it lives while the network does.
pub(crate) fn start_seed_thread(net: &Arc<Net>) {
    let weak: Weak<Net> = Arc::downgrade(net);
    let rx = net.glue.wake_rx.clone();
    let name = format!("aemp-seeds {}", net.id);
    let r = std::thread::Builder::new().name(name).spawn(move || loop {
        let next = {
            let Some(net) = weak.upgrade() else { return };
            if net.glue.stopped.load(Ordering::Acquire) {
                return;
            }
            net.glue.round(&net)
        };
        let wait = next.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    });
    if let Err(e) = r {
        log::error!("{}: cannot start the seed thread: {e}", net.id);
    }
}
