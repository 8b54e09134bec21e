//! The database service of a networked node: one [`DbNode`] under a lock,
//! fed by the network's peer events ([`PeerEvents`]), its packets sent
//! and its events acted on under that lock: user callbacks (`db_mon`,
//! query answers) are queued as dispatcher tasks, in event order, and
//! never run while it is held; addresses found and the global nodes to
//! keep connected go back to the network.
//!
//! Lock order: the network's seeds lock (when it publishes), then this
//! lock, then a remote's (sending under this lock keeps the packets of
//! concurrent callers in order). The service never calls back into the
//! seeds.

use crate::db::protocol::{DbMonEvent, DbNode, Event, MonId, QueryId, QueryResult, LISTENERS};
use crate::message::Message;
use crate::net::{Net, PeerEvent, PeerEvents};
use parking_lot::Mutex;
use serde_json::Value;
use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A query's callback.
pub(crate) type QueryCb = Box<dyn FnOnce(QueryResult) + Send>;
/// A `db_mon` callback.
pub(crate) type MonCb = Box<dyn FnMut(&DbMonEvent) + Send>;

/// A `db_mon` callback; `cancelled` skips events already queued.
struct MonEntry {
    cancelled: AtomicBool,
    f: Mutex<MonCb>,
}

/// What the lock guards.
pub(crate) struct State {
    /// The protocol state machine.
    pub(crate) db: DbNode,
    queries: HashMap<QueryId, QueryCb>,
    mons: HashMap<MonId, Arc<MonEntry>>,
}

impl State {
    /// Keeps `cb` for the answer to `q`.
    pub(crate) fn add_query(&mut self, q: QueryId, cb: QueryCb) {
        self.queries.insert(q, cb);
    }

    /// Keeps `f` for the events of subscription `m`.
    pub(crate) fn add_mon(&mut self, m: MonId, f: MonCb) {
        let e = Arc::new(MonEntry {
            cancelled: AtomicBool::new(false),
            f: Mutex::new(f),
        });
        self.mons.insert(m, e);
    }

    /// Ends subscription `m`: events already queued are skipped.
    pub(crate) fn remove_mon(&mut self, m: MonId) {
        if let Some(e) = self.mons.remove(&m) {
            e.cancelled.store(true, Ordering::Release);
            self.db.db_mon_stop(m);
        }
    }
}

/// The database service of one networked node.
pub(crate) struct Service {
    st: Mutex<State>,
}

impl Service {
    /// A service for node `me`.
    pub(crate) fn new(me: &str) -> Service {
        Service {
            st: Mutex::new(State {
                db: DbNode::new(me),
                queries: HashMap::new(),
                mons: HashMap::new(),
            }),
        }
    }

    /// The service of `net`'s node.
    pub(crate) fn of(net: &Net) -> Option<&Service> {
        net.events().as_any().downcast_ref()
    }

    /// Runs `f` on the state, then sends the database's packets and acts
    /// on its events, all under the lock.
    pub(crate) fn with<R>(&self, net: &Net, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.st.lock();
        let r = f(&mut st);
        flush(net, &mut st);
        r
    }
}

fn flush(net: &Net, st: &mut State) {
    for (to, p) in st.db.take_packets() {
        let msg = Message::from(p.get(1..).unwrap_or(&[]).to_vec());
        net.send(&to, "", msg);
    }
    for ev in st.db.take_events() {
        match ev {
            Event::DbMon(ev) => {
                let entries: Vec<Arc<MonEntry>> = ev
                    .monitors
                    .iter()
                    .filter_map(|m| st.mons.get(m).cloned())
                    .collect();
                if let (Some(node), false) = (net.node(), entries.is_empty()) {
                    node.task(move || run_mons(entries, &ev));
                }
            }
            Event::Reply { query, result } => {
                if let (Some(cb), Some(node)) = (st.queries.remove(&query), net.node()) {
                    node.task(move || {
                        if let Err(t) = crate::context::catch(|| cb(result)) {
                            log::error!("a database query callback panicked: {t}");
                        }
                    });
                }
            }
            Event::Found { node, addresses } => net.found(&node, addresses, st.db.is_global()),
            Event::MasterChanged(m) => {
                log::info!("{}: database master is now {m:?}", net.id())
            }
            Event::BecameGlobal => log::info!("{}: became a global node", net.id()),
            Event::Globals(list) => net.keep_connected(list),
        }
    }
}

/// Runs the `db_mon` callbacks of one event (on the dispatcher).
fn run_mons(entries: Vec<Arc<MonEntry>>, ev: &DbMonEvent) {
    for e in entries {
        if e.cancelled.load(Ordering::Acquire) {
            continue;
        }
        let mut f = e.f.lock();
        if let Err(t) = crate::context::catch(|| f(ev)) {
            log::error!("a db_mon callback panicked: {t}");
        }
    }
}

impl PeerEvents for Service {
    fn event(&self, net: &Net, ev: PeerEvent<'_>) {
        self.with(net, |st| match ev {
            PeerEvent::Listening(addrs) => {
                if addrs.is_empty() {
                    return;
                }
                let me = st.db.node_id().to_string();
                let list = addrs.iter().map(|a| Value::from(a.as_str())).collect();
                if let Err(e) = st.db.db_set(LISTENERS, &me, Value::Array(list)) {
                    log::warn!("{}: cannot publish listen addresses: {e}", net.id());
                }
            }
            PeerEvent::OwnSeed => st.db.become_global(),
            PeerEvent::Up { node, seed } => st.db.peer_up(node, seed),
            PeerEvent::IsSeed(node) => st.db.peer_is_seed(node),
            PeerEvent::Down(node) => st.db.peer_down(node),
            PeerEvent::NeedAddress(node) => st.db.find(node),
            PeerEvent::Packet { from, tag, args } => st.db.packet(from, tag, args),
        })
    }

    fn node_at(&self, addrs: &[SocketAddr]) -> Option<String> {
        let st = self.st.lock();
        let store = st.db.global_store()?;
        store.family(LISTENERS).into_iter().find_map(|(node, v)| {
            let hit = v.as_array()?.iter().any(|a| {
                a.as_str()
                    .and_then(|t| t.parse::<SocketAddr>().ok())
                    .is_some_and(|a| addrs.contains(&a))
            });
            hit.then_some(node)
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
