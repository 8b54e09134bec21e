//! One node's data connections under way (the original's `%STATE`): the
//! caller's (`connect_to`) and the other node's (`_expect`), each ended
//! once by its connection, an error or its time-out; the functions other
//! nodes call (`_expect`, `_connect`); and the sink the network hands
//! authenticated connections to.

use super::stream::DataConn;
use crate::id::{NodeId, PortId};
use crate::message::{Message, Reason};
use crate::monitor::MonGuard;
use crate::net::{DataConnSink, Handed, Net, NodeNet};
use crate::node::Node;
use crate::timer::{self, Timer};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The original's package name: the kill reason's first element, and the
/// prefix of the functions other nodes call.
pub(crate) const PACKAGE: &str = "AnyEvent::MP::DataConn";
pub(crate) const EXPECT: &str = "AnyEvent::MP::DataConn::_expect";
pub(crate) const CONNECT: &str = "AnyEvent::MP::DataConn::_connect";

/// A registered init function.
pub(crate) type InitFn = Arc<dyn Fn(Message, DataConn) + Send + Sync>;

/// What ends a data connection under way.
enum Role {
    /// We asked for it: `cb` gets the connection.
    Caller {
        port: PortId,
        cb: Box<dyn FnOnce(DataConn) + Send>,
    },
    /// Another node asked for it (`_expect`): `initfunc` gets it.
    Expect {
        port: PortId,
        initfunc: String,
        initdata: Message,
    },
}

struct Pending {
    /// The node at the other end.
    peer: String,
    role: Role,
    timer: Timer,
    /// The caller's: the caller's port died, so the attempt ends quietly.
    watch: Option<MonGuard>,
}

/// A node's data-connection state (kept by its network as the sink).
pub(crate) struct State {
    net: Weak<Net>,
    counter: AtomicU64,
    pending: Mutex<HashMap<String, Pending>>,
    inits: RwLock<HashMap<String, InitFn>>,
}

impl DataConnSink for State {
    fn handoff(&self, id: &str, result: Result<Handed, String>) {
        self.end(id, result);
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// Installs the data-connection functions and sink on a networked node.
pub(crate) fn install(node: &Node) {
    let Some(net) = node.net() else {
        return;
    };
    let state = Arc::new(State {
        net: Arc::downgrade(net),
        counter: AtomicU64::new(0),
        pending: Mutex::new(HashMap::new()),
        inits: RwLock::new(HashMap::new()),
    });
    net.set_dataconn_sink(state.clone());
    let weak = Arc::downgrade(&state);
    // At once on the routing thread, so that `_expect` is in place before
    // the caller's round trip (a built-in `snd`) answers.
    node.register_immediate(EXPECT, move |args| {
        if let Some(st) = weak.upgrade() {
            st.expect(args);
        }
    });
    let weak = Arc::downgrade(&state);
    node.register_immediate(CONNECT, move |args| {
        if let Some(st) = weak.upgrade() {
            st.connect_back(args);
        }
    });
}

/// The state of `node`'s data connections, if it has a network.
pub(crate) fn of(node: &Node) -> Option<Arc<State>> {
    let sink = node.net()?.dataconn_sink()?;
    let any: Arc<dyn std::any::Any + Send + Sync> = sink.into_any();
    any.downcast::<State>().ok()
}

/// The kill reason of a failed data connection.
pub(crate) fn reason(why: &str) -> Reason {
    Reason(vec![Value::from(PACKAGE), Value::from(why)])
}

impl State {
    fn node(&self) -> Option<Node> {
        self.net.upgrade()?.node()
    }

    /// The init function registered as `name`.
    pub(crate) fn init(&self, name: &str) -> Option<InitFn> {
        self.inits.read().get(name).cloned()
    }

    /// Registers an init function.
    pub(crate) fn register(&self, name: &str, f: InitFn) {
        self.inits.write().insert(name.to_string(), f);
    }

    /// A fresh ID: `<counter>@<node ID>`.
    pub(crate) fn next_id(&self, me: &NodeId) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{n}@{me}")
    }

    /// Starts waiting for connection `id` with `peer` for `timeout`.
    fn add(self: &Arc<Self>, id: &str, peer: &str, role: Role, timeout: Duration, why: String) {
        let weak = Arc::downgrade(self);
        let key = id.to_string();
        let timer = timer::schedule(timeout, move || {
            if let Some(st) = weak.upgrade() {
                st.end(&key, Err(why));
            }
        });
        self.pending.lock().insert(
            id.to_string(),
            Pending {
                peer: peer.to_string(),
                role,
                timer,
                watch: None,
            },
        );
    }

    /// Our side of `connect_to`: waits for `id` to `peer`, then `cb`.
    pub(crate) fn add_caller(
        self: &Arc<Self>,
        id: &str,
        peer: &NodeId,
        port: PortId,
        timeout: Duration,
        cb: Box<dyn FnOnce(DataConn) + Send>,
    ) {
        let why = format!(
            "{peer}: unable to establish connection within {} seconds",
            timeout.as_secs_f64()
        );
        let watched = port.clone();
        self.add(id, peer.as_str(), Role::Caller { port, cb }, timeout, why);
        // The port killed (by the other node, or anything else): no
        // callback for a dead port.
        let Some(node) = self.node() else {
            return;
        };
        let weak = Arc::downgrade(self);
        let key = id.to_string();
        let guard = node.mon(&watched, move |_| {
            if let Some(st) = weak.upgrade() {
                st.forget(&key);
            }
        });
        match self.pending.lock().get_mut(id) {
            Some(p) => p.watch = Some(guard),
            None => drop(guard),
        }
    }

    /// Ends `id` quietly (its port died).
    fn forget(&self, id: &str) {
        let gone = self.pending.lock().remove(id);
        if let Some(p) = gone {
            p.timer.cancel();
        }
    }

    /// Whether `id` is still under way.
    pub(crate) fn is_pending(&self, id: &str) -> bool {
        self.pending.lock().contains_key(id)
    }

    /// Ends `id` with its connection or an error (once: later ends find
    /// nothing, and a connection then closes). What may block or run user
    /// code (the callback, the init function) runs on a thread of its own.
    pub(crate) fn end(&self, id: &str, result: Result<Handed, String>) {
        let Some(mut p) = self.pending.lock().remove(id) else {
            // Late (a time-out came first), or unknown: closed.
            return;
        };
        p.timer.cancel();
        drop(p.watch.take());
        let Some(node) = self.node() else {
            return;
        };
        let conn = match result {
            Ok(h) if h.peer == p.peer => Ok(h),
            Ok(h) => Err(format!("expected node {} but {} answered", p.peer, h.peer)),
            Err(e) => Err(e),
        };
        let peer = NodeId::new(&p.peer);
        let inits = self.inits.read();
        let init = match &p.role {
            Role::Expect { initfunc, .. } => inits.get(initfunc).cloned(),
            Role::Caller { .. } => None,
        };
        drop(inits);
        let run = move || match (conn, peer, p.role) {
            (Ok(h), Ok(peer), Role::Caller { cb, .. }) => cb(DataConn::from_handed(peer, h)),
            (
                Ok(h),
                Ok(peer),
                Role::Expect {
                    initdata,
                    port,
                    initfunc,
                },
            ) => match init {
                Some(f) => f(initdata, DataConn::from_handed(peer, h)),
                None => {
                    let why = format!(
                        "{initfunc}: no such data connection function on {}",
                        node.id()
                    );
                    let _ = node.kil(&port, reason(&why));
                }
            },
            (Err(why), _, Role::Caller { port, .. } | Role::Expect { port, .. }) => {
                let _ = node.kil(&port, reason(&why));
            }
            (Ok(_), Err(e), Role::Caller { port, .. } | Role::Expect { port, .. }) => {
                let _ = node.kil(&port, reason(&e.to_string()));
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("aemp-dataconn".into())
            .spawn(run)
        {
            log::error!("data connection {id}: cannot start its thread: {e}");
        }
    }

    /// `_expect(id, port, timeout, initfunc, initdata...)`: another node
    /// is about to connect.
    fn expect(self: &Arc<Self>, args: Message) {
        let parsed = (|| {
            let id = args.first()?.as_str()?.to_string();
            let port = PortId::try_from(args.get(1)?).ok()?;
            let timeout = args
                .get(2)?
                .as_f64()
                .filter(|t| t.is_finite() && *t >= 0.0)?;
            let initfunc = args.get(3)?.as_str()?.to_string();
            let initdata: Message = args.iter().skip(4).cloned().collect();
            Some((id, port, timeout, initfunc, initdata))
        })();
        let Some((id, port, timeout, initfunc, initdata)) = parsed else {
            log::warn!("{EXPECT}: expected [id, port, timeout, initfunc, initdata...], got {args}");
            return;
        };
        if self.init(&initfunc).is_none() {
            // Nothing could take the connection: the caller hears now
            // (before the round trip's reply), and ours goes unanswered.
            if let Some(node) = self.node() {
                let why = format!(
                    "{initfunc}: no such data connection function on {}",
                    node.id()
                );
                let _ = node.kil(&port, reason(&why));
            }
            return;
        }
        let timeout = Duration::from_secs_f64(timeout.min(1e9));
        let peer = port.node().to_string();
        let why = format!(
            "{peer}: no data connection within {} seconds",
            timeout.as_secs_f64()
        );
        let role = Role::Expect {
            port,
            initfunc,
            initdata,
        };
        self.add(&id, &peer, role, timeout, why);
    }

    /// `_connect(id, node)`: the caller found no listener of ours, so we
    /// connect back: we dial `node`.
    fn connect_back(&self, args: Message) {
        let (Some(id), Some(node)) = (
            args.first().and_then(Value::as_str),
            args.get(1).and_then(Value::as_str),
        ) else {
            log::warn!("{CONNECT}: expected [id, node], got {args}");
            return;
        };
        if !self.is_pending(id) {
            return;
        }
        self.dial(id, node);
    }

    /// Opens connection `id` to `node` at its known addresses (`_connect`).
    pub(crate) fn dial(&self, id: &str, node: &str) {
        let Some(net) = self.net.upgrade() else {
            return;
        };
        let addrs = net.known_addresses(node);
        if addrs.is_empty() {
            self.end(id, Err(format!("{node}: no listeners found")));
        } else {
            net.data_dial(id.to_string(), addrs);
        }
    }
}
