//! The network: nodes talking over TCP with the AEMP wire protocol.
//!
//! ```text
//!   kernel ──Network (seam.rs): send, kill, monitor──► Net (mod.rs)
//!     remote.rs (link state) ─► outbox.rs (encode; write if idle)
//!   reactor thread: reactor.rs (poll loop) ─► dial.rs, inbound.rs
//!     (handshake: transport/, duplicate.rs) ─► requests.rs ─► kernel
//!     (Node::deliver_from, node-port requests)
//!   PeerEvents (events.rs) ─► the database service above (db/)
//! ```
//!
//! Threads: the node's one reactor thread owns every socket, runs the
//! handshakes, the timers (dials, heartbeats, seeds) and the routing of
//! what arrives; senders (any thread) encode into a connection's outbox;
//! monitor firing after a loss runs as a dispatcher task. The network
//! imports the kernel, never the database.
//!
//! - `config.rs`: [`Config`], node-ID expansion, bind parsing.
//! - `remote.rs`: per remote node: the link state (idle, connecting, up,
//!   down), the packets queued while connecting, our monitors of its ports
//!   and the monitors we hold for it.
//! - `conn.rs`: one TCP connection as the reactor sees it (handshake, then
//!   data), and the reactor's table of them (a slab; a token carries a
//!   serial number, so a stale one never finds a slot's next connection).
//! - `outbox.rs`: a connection's outgoing side: senders encode packets
//!   into it (or write them at once when the connection is idle);
//!   `lanes.rs`, its two lanes (large packets queue apart, so small ones
//!   to other ports need not wait behind them).
//! - `reactor.rs`: the one mio thread owning every socket; it never runs
//!   user code, it only pushes into port inboxes and dispatcher tasks.
//!   Its poll loop, commands, timers, and sockets' reads and writes.
//! - `dial.rs`: the reactor's dialing: connection attempts to one node and
//!   their timing.
//! - `inbound.rs`: the reactor's path for what arrives on a connection:
//!   handshake, greeting, the connection going up, packets.
//! - `closing.rs`: closing a connection; the reactor's ends (at once, or
//!   cleanly when the node shuts down).
//! - `duplicate.rs`: the duplicate-connection rule, a pure function the
//!   reactor asks when a peer greets it.
//! - `requests.rs`: node-port requests that need the sending node
//!   (`mon1`, `mon0`, `kil1`, `kil0`).
//! - `nodes.rs`: `mon_nodes` callbacks.
//! - `events.rs`: [`PeerEvents`], what the network tells the service
//!   above it (the database, `crate::db`): peers up and down, seeds
//!   found, addresses needed, `g_*` packets. The network never calls the
//!   database otherwise.
//! - `seeds.rs`: seeds (connection attempts with back-off, on the
//!   reactor's timer), the global mesh, discovery (a dial with no usable
//!   address asks the subscriber, which asks the master: `g_find`), and
//!   the advertised listen addresses.
//! - `tls.rs`: TLS sessions over in-memory pipes (OpenSSL).
//! - `handoff.rs`: the seam for data connections (`crate::dataconn`):
//!   opening one, and handing an authenticated one out of the reactor.
//!
//! Senders encode on their own thread into the connection's outgoing
//! buffer and wake the reactor only when that buffer was empty, so many
//! packets leave in one write. A sender that finds the connection idle
//! (nothing buffered, nothing being written, no direct write in the last
//! 25 µs) writes the packet itself: a light exchange then skips one
//! thread hand-off, while a stream still leaves in batches.
//!
//! Decisions worth knowing:
//! - One connection per node pair (`duplicate.rs`). A new connection from
//!   a node we are connected to is refused at the greeting; the working one
//!   is kept but probed, so a restarted peer is noticed. If it stayed
//!   silent since such a probe, the node's next attempt fails it (its
//!   monitors fire, "switched connections") and the attempt after gets
//!   through. Two handshakes racing each other: the one opened by the node
//!   with the smaller ID is kept, the other closed before it completes, so
//!   both ends agree and no monitor fires. While a lost connection's
//!   monitors are still firing, new connections are refused.
//! - No holes: after a loss the link is down until a dispatcher task has
//!   fired every monitor of that node. Sends from other threads meanwhile
//!   are dropped; sends from those monitor callbacks go out on a new
//!   connection. Then `mon_nodes` hears of it, and sends work again.
//! - Packets read in one chunk take effect together (port scheduling is
//!   deferred to the end of the chunk), like one turn of the original's
//!   event loop: a spawn and the `mon1` sent right after it report the
//!   init's `die`, not `no_such_port`.

mod closing;
mod config;
mod conn;
mod dial;
mod duplicate;
mod events;
mod follow;
mod handoff;
mod inbound;
mod lanes;
mod nodes;
mod outbox;
mod reactor;
mod remote;
mod requests;
mod seeds;
mod tls;

pub use config::Config;
pub(crate) use events::{PeerEvent, PeerEvents};
pub(crate) use handoff::{DataConnSink, Handed, TlsStream};

use crate::error::{Error, Result};
use crate::id::{NodeId, PortId};
use crate::message::{Message, Reason};
use crate::monitor::{MonGuard, MonitorAction};
use crate::node::{Node, NodeInner};
use crate::seam::{KernelOptions, Network};
use crate::transport;
use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};
use remote::Remote;
use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The node-port function every networked node registers: `[NAME, PORT]`
/// sends `[stats]` to PORT, [`Node::stats`] as JSON (what `aemp stats`
/// shows).
pub const STATS_FUNCTION: &str = "aemp::stats";

/// The network of one node; shared by the node, the senders and the
/// reactor thread.
pub(crate) struct Net {
    node: Weak<NodeInner>,
    id: NodeId,
    hs: transport::Config,
    tls: Option<tls::TlsConfig>,
    monitor_timeout: Duration,
    connect_interval: Duration,
    nodelay: bool,
    /// The heartbeat tick (zero: none); see [`Config::tick`].
    tick: Duration,
    /// See [`Config::unsent_limit`].
    unsent_limit: usize,
    /// See [`Config::unsent_high_water`].
    unsent_high_water: usize,
    /// How long the reactor, the dispatcher and thread ports poll for
    /// work before sleeping (see `crate::busy`).
    pub(crate) busy_wait: Duration,
    /// Packets handed to connections (the reactor polls only while its
    /// node converses, see `crate::busy`).
    pub(crate) sends: Arc<CachePadded<AtomicU64>>,
    /// `AEMP_TRACE=1`: one log line per packet.
    trace: bool,
    remotes: RwLock<HashMap<String, Arc<Remote>>>,
    /// Known addresses of other nodes, resolved when learned (so the
    /// reactor never waits for DNS): `(text, address)` in trial order.
    addresses: Mutex<HashMap<String, Vec<(String, SocketAddr)>>>,
    listen: Vec<SocketAddr>,
    reactor: reactor::Handle,
    /// The reactor thread, joined by [`Network::close`].
    reactor_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    nodes: nodes::NodeMonitors,
    /// Why the latest failed connection attempt to a node (by ID) or an
    /// address (as given) failed; forgotten when a connection there comes
    /// up (see [`Net::last_failure`]).
    failures: Mutex<HashMap<String, String>>,
    /// Seeds and the global mesh.
    seeds: seeds::Seeds,
    /// The subscriber to peer events (the database service).
    events: Arc<dyn PeerEvents>,
    /// Where data connections go (`handoff.rs`).
    dataconn: std::sync::OnceLock<Arc<dyn DataConnSink>>,
}

/// The node's owning handle, its [`Network`]: dropping the node stops
/// its reactor.
struct NetHandle(Arc<Net>);

impl Drop for NetHandle {
    fn drop(&mut self) {
        self.0.reactor.shutdown();
    }
}

impl Network for NetHandle {
    fn send(&self, node: &str, port: &str, msg: Message) {
        self.0.send(node, port, msg);
    }

    fn send_wait(&self, port: &PortId, msg: Message, timeout: Duration) -> crate::Result<()> {
        self.0.send_wait(port, msg, timeout)
    }

    fn peers(&self) -> Vec<crate::stats::PeerStats> {
        self.0.peers()
    }

    fn last_failure(&self, key: &str) -> Option<String> {
        self.0.last_failure(key)
    }

    fn kill(&self, port: &PortId, reason: Reason) {
        let mut req = crate::msg!["kil1", port.name()];
        req.extend(reason.0);
        self.0.send(port.node(), "", req);
    }

    fn monitor(&self, port: &PortId, action: MonitorAction) -> MonGuard {
        self.0.monitor(port, action)
    }

    fn close(&self) {
        self.0.reactor.close();
        let thread = self.0.reactor_thread.lock().take();
        if let Some(thread) = thread {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The network of a node, for the network's and the database's own use.
pub(crate) trait NodeNet {
    /// The node's network, if it was built with one.
    fn net(&self) -> Option<&Arc<Net>>;
}

impl NodeNet for Node {
    fn net(&self) -> Option<&Arc<Net>> {
        let handle = self.network()?.as_any().downcast_ref::<NetHandle>()?;
        Some(&handle.0)
    }
}

impl Net {
    /// Remembers resolved addresses of `node` (duplicates ignored).
    fn learn(&self, node: &str, text: &str, addrs: Vec<SocketAddr>) {
        let mut map = self.addresses.lock();
        let list = map.entry(node.to_string()).or_default();
        for a in addrs {
            if !list.iter().any(|(_, known)| *known == a) {
                list.push((text.to_string(), a));
            }
        }
    }

    pub(crate) fn node(&self) -> Option<Node> {
        self.node.upgrade().map(|inner| Node { inner })
    }

    /// The node's ID.
    pub(crate) fn id(&self) -> &NodeId {
        &self.id
    }

    /// The subscriber to peer events.
    pub(crate) fn events(&self) -> &dyn PeerEvents {
        &*self.events
    }
}

/// Creates a networked node from `cfg` with `events` subscribed to its
/// peer events: expands its ID, binds its listen addresses and starts its
/// reactor thread (see [`Node::with_config`]).
pub(crate) fn start(cfg: Config, events: impl FnOnce(&str) -> Arc<dyn PeerEvents>) -> Result<Node> {
    cfg.check()?;
    let id = cfg.expanded_node_id()?;
    let options = KernelOptions {
        busy_wait: cfg.busy_wait,
        thread_stack_size: cfg.thread_stack_size,
    };
    let node = Node::with_options(NodeId::new(id.as_str())?, options)?;
    let mut hs = transport::Config::new(id.as_str());
    hs.secret = cfg.secret.as_ref().map(|s| s.as_bytes().to_vec());
    hs.framings = cfg.framings.clone();
    hs.auth_offer = cfg.auth_offer.clone();
    hs.auth_accept = cfg.auth_accept.clone();
    hs.timeout = cfg.monitor_timeout;
    hs.extensions = vec![handoff::PROTOCOL.to_string()];
    let tls = match &cfg.cert {
        Some(pem) => {
            Some(tls::TlsConfig::from_pem(pem).map_err(|problem| Error::BadCert { problem })?)
        }
        None => None,
    };
    hs.have_cert = tls.is_some();
    let mut binds = Vec::new();
    for b in &cfg.binds {
        binds.extend(config::parse_bind(b)?.into_iter().map(|a| (b.clone(), a)));
    }
    let mut seeds = Vec::new();
    for s in &cfg.seeds {
        seeds.push((s.clone(), config::parse_addr(s)?));
    }
    let (handle, listen, run) = reactor::prepare(&binds)?;
    let net = Arc::new(Net {
        node: Arc::downgrade(&node.inner),
        id: id.clone(),
        hs,
        tls,
        monitor_timeout: cfg.monitor_timeout,
        connect_interval: cfg.connect_interval,
        nodelay: cfg.nodelay,
        tick: cfg.tick,
        unsent_limit: cfg.unsent_limit,
        unsent_high_water: cfg.unsent_high_water,
        busy_wait: cfg.busy_wait,
        sends: Default::default(),
        trace: std::env::var("AEMP_TRACE").is_ok_and(|v| v != "0" && !v.is_empty()),
        remotes: RwLock::new(HashMap::new()),
        addresses: Mutex::new(HashMap::new()),
        failures: Mutex::new(HashMap::new()),
        listen,
        reactor: handle,
        reactor_thread: Mutex::new(None),
        nodes: nodes::NodeMonitors::default(),
        seeds: seeds::Seeds::default(),
        events: events(id.as_str()),
        dataconn: std::sync::OnceLock::new(),
    });
    for (peer, list) in &cfg.addresses {
        for text in list {
            net.learn(peer, text, config::parse_addr(text)?);
        }
    }
    *net.reactor_thread.lock() = Some(run(net.clone())?);
    node.set_network(Box::new(NetHandle(net.clone())));
    register_stats(&node, &net);
    net.events
        .event(&net, PeerEvent::Listening(&net.advertised()));
    net.add_seeds(&seeds);
    Ok(node)
}

/// Registers [`STATS_FUNCTION`] on `node`.
fn register_stats(node: &Node, net: &Arc<Net>) {
    let weak = Arc::downgrade(net);
    node.register(STATS_FUNCTION, move |args| {
        let Some(node) = weak.upgrade().and_then(|n| n.node()) else {
            return;
        };
        match args.first().map(PortId::try_from) {
            Some(Ok(reply)) => match serde_json::to_value(node.stats()) {
                Ok(v) => node.snd(&reply, crate::msg![v]),
                Err(e) => log::error!("{STATS_FUNCTION}: {e}"),
            },
            _ => log::warn!("{STATS_FUNCTION}: expected a reply port, got {args}"),
        }
    });
}

/// # The network: addresses, connections, node monitoring
impl Node {
    fn need_net(&self, what: &'static str) -> Result<&Arc<Net>> {
        self.net().ok_or_else(|| Error::NoNetwork {
            what,
            node: self.id().clone(),
        })
    }

    /// The addresses this node listens on (ports resolved).
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// let node = Node::with_config(Config::new("doc-listen/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// let addrs = node.listen_addrs();
    /// assert_eq!(addrs.len(), 1);
    /// assert_ne!(addrs[0].port(), 0); // the port the system chose
    /// assert!(Node::new("local-only").unwrap().listen_addrs().is_empty());
    /// ```
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.net().map(|n| n.listen.clone()).unwrap_or_default()
    }

    /// Connects to `addr` (`host:port`) and learns the node ID there from
    /// its greeting; the address is remembered for that node. Returns at
    /// once; [`mon_nodes`](Node::mon_nodes) or
    /// [`node_is_up`](Node::node_is_up) tell when the node is up.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let server = Node::with_config(Config::new("doc-connect-server/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// let client = Node::with_config(Config::new("doc-connect-client/").secret("s")).unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let _watch = client.mon_nodes(move |node, up, _| tx.send((node.clone(), up)).unwrap()).unwrap();
    /// client.connect(&server.listen_addrs()[0].to_string()).unwrap();
    /// // The client learns the server's ID from its greeting.
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), (server.id().clone(), true));
    /// assert_eq!(client.node_is_up(server.id()), Some(true));
    /// ```
    pub fn connect(&self, addr: &str) -> Result<()> {
        let net = self.need_net("connect")?;
        let addrs = config::parse_addr(addr)?;
        net.reactor.connect(addr.to_string(), addrs);
        Ok(())
    }

    /// Adds a seed (`host:port`, resolved now) to those the node keeps
    /// connecting to (see [`Config::seeds`](Config#structfield.seeds)).
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let seed = Node::with_config(Config::new("doc-add-seed/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// // Its own address among its seeds makes a node a global node (a database server).
    /// seed.add_seed(&seed.listen_addrs()[0].to_string()).unwrap();
    /// assert!(seed.db_keys_wait("f", Duration::from_secs(10)).unwrap().is_empty());
    /// assert!(seed.is_global());
    /// ```
    pub fn add_seed(&self, addr: &str) -> Result<()> {
        let net = self.need_net("add_seed")?;
        let addrs = config::parse_addr(addr)?;
        net.add_seeds(&[(addr.to_string(), addrs)]);
        Ok(())
    }

    /// Adds a known address of `node` (like [`Config::address`]).
    ///
    /// ```
    /// use aemp::{msg, Config, Node};
    /// use std::time::Duration;
    /// let cfg = |id: &str| Config::new(id).bind("127.0.0.1:0").secret("s");
    /// let a = Node::with_config(cfg("doc-add-address-a/")).unwrap();
    /// let b = Node::with_config(cfg("doc-add-address-b/")).unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let inbox = a.port_fn(move |m| tx.send(m).unwrap());
    /// b.add_address(a.id(), &a.listen_addrs()[0].to_string()).unwrap();
    /// b.snd(&inbox, msg!["hello from b"]); // b connects on demand
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), msg!["hello from b"]);
    /// ```
    pub fn add_address(&self, node: &NodeId, addr: &str) -> Result<()> {
        let net = self.need_net("add_address")?;
        net.learn(node.as_str(), addr, config::parse_addr(addr)?);
        Ok(())
    }

    /// The nodes this node has a working connection to (never itself).
    ///
    /// ```
    /// use aemp::{msg, Config, Node};
    /// use std::time::Duration;
    /// let cfg = |id: &str| Config::new(id).bind("127.0.0.1:0").secret("s");
    /// let a = Node::with_config(cfg("doc-up-nodes-a/")).unwrap();
    /// let b = Node::with_config(cfg("doc-up-nodes-b/")).unwrap();
    /// assert!(b.up_nodes().is_empty());
    /// let echo = a.port_fn(|m| aemp::snd(&m.reply_port().unwrap(), msg![]));
    /// b.add_address(a.id(), &a.listen_addrs()[0].to_string()).unwrap();
    /// b.call(&echo, msg!["ping"], Duration::from_secs(10)).unwrap(); // connected now
    /// assert_eq!(b.up_nodes(), [a.id().clone()]);
    /// ```
    pub fn up_nodes(&self) -> Vec<NodeId> {
        let Some(net) = self.net() else {
            return Vec::new();
        };
        let remotes: Vec<Arc<Remote>> = net.remotes.read().values().cloned().collect();
        remotes
            .into_iter()
            .filter(|r| r.is_up())
            .map(|r| crate::NodeId::clone(&r.id))
            .collect()
    }

    /// `Some(true)` if `node` is connected (or is this node), `Some(false)`
    /// while connecting or after a loss, `None` for a node never dealt with.
    ///
    /// ```
    /// use aemp::{Config, Node, NodeId};
    /// let node = Node::with_config(Config::new("doc-node-is-up/").secret("s")).unwrap();
    /// assert_eq!(node.node_is_up(node.id()), Some(true));
    /// assert_eq!(node.node_is_up(&NodeId::new("stranger").unwrap()), None);
    /// ```
    pub fn node_is_up(&self, node: &NodeId) -> Option<bool> {
        if node == self.id() {
            return Some(true);
        }
        let net = self.net()?;
        let remote = net.remotes.read().get(node.as_str()).cloned();
        remote.map(|r| r.is_up())
    }

    /// Calls `f(node, true, [])` when a node comes up and
    /// `f(node, false, reason)` when it goes down, strictly alternating per
    /// node, on the dispatcher. Dropping the guard stops it.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let a = Node::with_config(Config::new("doc-mon-nodes-a/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// let b = Node::with_config(Config::new("doc-mon-nodes-b/").secret("s")).unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let _guard = a
    ///     .mon_nodes(move |node, up, reason| tx.send((node.clone(), up, reason.kind().map(String::from))).unwrap())
    ///     .unwrap();
    /// b.connect(&a.listen_addrs()[0].to_string()).unwrap();
    /// let t = Duration::from_secs(10);
    /// assert_eq!(rx.recv_timeout(t).unwrap(), (b.id().clone(), true, None));
    /// b.shutdown(); // closes its connections
    /// let (who, up, _) = rx.recv_timeout(t).unwrap();
    /// assert_eq!((who, up), (b.id().clone(), false));
    /// ```
    pub fn mon_nodes(
        &self,
        f: impl FnMut(&NodeId, bool, &Reason) + Send + 'static,
    ) -> Result<MonGuard> {
        let net = self.need_net("mon_nodes")?;
        Ok(net.nodes.add(net, Box::new(f)))
    }

    /// Test hook: cuts the connection to `node` as if the network failed
    /// (both ends see the loss).
    #[doc(hidden)]
    pub fn net_cut(&self, node: &NodeId) {
        if let Some(net) = self.net() {
            net.reactor.cut(node.to_string());
        }
    }

    /// Test hook: stops the reactor and closes every socket, as if the
    /// process had died (the node stays usable locally).
    #[doc(hidden)]
    pub fn net_shutdown(&self) {
        if let Some(net) = self.net() {
            net.reactor.shutdown();
        }
    }
}

/// At most this many failures are remembered (a node trying many dead
/// addresses must not grow without bound).
const MAX_FAILURES: usize = 1024;

impl Net {
    /// Remembers why a connection attempt to `node` (if known) at `addr`
    /// failed. A vague failure (the peer closed during the handshake, or
    /// one side refused a duplicate) does not replace a telling one (an
    /// authentication failure, a refused connection): the telling one is
    /// usually why the vague ones follow.
    pub(crate) fn note_failure(&self, node: Option<&str>, addr: &str, why: &str) {
        let vague = |w: &str| w.contains("closed during handshake") || duplicate::is_refusal(w);
        let mut f = self.failures.lock();
        if f.len() >= MAX_FAILURES {
            f.clear();
        }
        for key in node.into_iter().chain([addr]) {
            match f.get_mut(key) {
                Some(old) if vague(why) && !vague(old) => {}
                Some(old) => why.clone_into(old),
                None => {
                    f.insert(key.to_string(), why.to_string());
                }
            }
        }
    }

    /// A connection to `node` at `addr` came up: its failures are history.
    pub(crate) fn forget_failures(&self, node: &str, addr: &str) {
        let mut f = self.failures.lock();
        if !f.is_empty() {
            f.remove(node);
            f.remove(addr);
        }
    }

    /// See [`Network::last_failure`].
    pub(crate) fn last_failure(&self, key: &str) -> Option<String> {
        self.failures.lock().get(key).cloned()
    }
}
