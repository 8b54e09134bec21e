//! # aemp — Erlang-style message passing for Rust
//!
//! The Rust form of Perl's AnyEvent::MP (with Coro::MP's selective
//! receive). A *node* is a process (or a [`Node`] value inside one); a
//! *port* is a message destination `nodeid#name`. Messages are lists of
//! JSON values, usually starting with a string *tag*.
//!
//! The API by task (each [`Node`] method has a free-function twin, see
//! below):
//!
//! - **Create and configure.** [`Node::new`] (local only),
//!   [`Node::with_config`] with a [`Config`] (secret or certificate,
//!   listen addresses, seeds, time-outs), [`Node::from_profile`] from the
//!   configuration file ([`rcfile`]); [`configure`] /
//!   [`configure_profile`] for the process-wide node.
//! - **Ports.** [`Node::port_fn`] and [`Node::rcv`] / [`Node::rcv_default`]:
//!   callback ports, run on the node's dispatcher one message at a time,
//!   in arrival order. [`Node::port_thread`]: a port owning an OS thread
//!   and a selective-receive [`Mailbox`] (`get`, `get_tag`, `get_cond`,
//!   `get_as`, `select`). [`Node::kil`] ends a port with a [`Reason`].
//! - **Sending.** [`Node::snd`] with [`msg!`], [`Node::snd_value`] for a
//!   typed value: [`Message::from_value`] builds a message from a tuple,
//!   struct or enum (`["tag", fields...]`), [`Message::decode`] and
//!   [`Message::decode_prefix`] read it back, [`Octets`] carries binary
//!   data as Perl does. [`Node::snd_wait`] waits for room on a full
//!   connection; [`Node::after`] sends later.
//! - **Requests.** [`Node::call`] (blocking) and [`Node::cal`] (a callback)
//!   send a request with a fresh reply port; [`Mailbox::call`] from a
//!   thread port; [`Node::peval`] and [`psub`] run code in a port's
//!   context.
//! - **Monitoring.** [`Node::mon`] (a callback), `mon_send`, `mon_link`
//!   (kill the watcher too), `mon_guard`: after `mon`, a message is
//!   delivered in order or the monitor fires (with `["transport_error",
//!   node, text]` on connection loss): never a silent hole. Abnormal
//!   deaths nobody watches are logged at WARN (a crash report).
//! - **Spawning and functions.** [`Node::register`] names a function;
//!   [`Node::spawn`] starts a port running it on any node,
//!   [`Node::snd_to_func`] calls it there.
//! - **The database.** [`Node::db_set`], [`Node::db_reg`],
//!   [`Node::db_mon`], [`Node::db_keys_wait`] and the rest: a replicated
//!   key-value store held by the global nodes (the seeds), whose entries
//!   vanish with the node that set them.
//! - **The network.** Rust and Perl AnyEvent::MP 2.x nodes over TCP (hmac
//!   or TLS auth, json or cbor framing): [`Node::connect`],
//!   [`Node::up_nodes`], [`Node::node_is_up`], [`Node::mon_nodes`],
//!   [`src_node`], [`Node::stats`] (queues, last heard from, mailboxes);
//!   a heartbeat notices a silent peer, and each connection's outgoing
//!   buffer is bounded.
//! - **Data connections** (AnyEvent::MP::DataConn): [`Node::data_connect`],
//!   [`Node::data_connect_cb`] and [`Node::register_dataconn`] open a
//!   [`DataConn`], a blocking byte stream between two nodes for bulk data.
//! - **A node's lifecycle.** [`Node::shutdown`], [`Node::wait`],
//!   [`Node::wait_for_termination`] (SIGINT/SIGTERM).
//! - **Process RPC.** [`rpc`]: run functions in worker processes, singly
//!   or as a pool.
//! - **The protocols** as pure state machines: [`protocol`].
//!
//! - Gathered logs: [`logcatch`] (AnyEvent::MP::LogCatcher): a catcher
//!   node receives every other node's `log` records.
//!
//! Each `Node` method has a free-function twin ([`snd`], [`port_fn`],
//! [`kil`], ...) acting on the *current* node: the node whose port code is
//! running, else the process-wide [`default_node`].
//!
//! ```
//! use aemp::{msg, Node};
//! let node = Node::new("tour").unwrap();
//! let (tx, rx) = std::sync::mpsc::channel();
//! let server = node.port_fn(|m| {
//!     // ["ping", reply_port]: answer on the reply port.
//!     let reply: aemp::PortId = m.decode::<(String, _)>().unwrap().1;
//!     aemp::snd(&reply, msg!["pong"]);
//! });
//! let client = node.port_fn(move |m| tx.send(m).unwrap());
//! node.snd(&server, msg!["ping", &client]);
//! assert_eq!(rx.recv().unwrap(), msg!["pong"]);
//! ```
//!
//! # The rooms inside
//!
//! ```text
//!   configure.rs: builds a node; a networked one gets net/ and db/ wired
//!   ┌────────────┐  PeerEvents (up, down, g_* ...)  ┌──────────────────┐
//!   │ net/       │ ───────────────────────────────► │ db/ (service,    │
//!   │ reactor    │ ◄─────────── send g_*, mesh ──── │ api, protocol/)  │
//!   └────────────┘                                  └──────────────────┘
//!     │ deliver_from, node-port requests  ▲ Network (seam.rs): send,
//!     ▼                                   │ kill, monitor a remote port
//!   ┌──────────────────────────────────────────────────────────────────┐
//!   │ kernel: node.rs (port table, run queue), port/ (the port cell),  │
//!   │ dispatcher.rs, monitor.rs, node_port.rs, context.rs              │
//!   └──────────────────────────────────────────────────────────────────┘
//!   protocol/ (transport, db): pure state machines, no sockets
//!   dataconn/: data connections, above net/ (its seam: net/handoff.rs)
//!   rpc/, rcfile/: stand alone
//! ```
//!
//! Threads: each node has one *dispatcher* thread running callback ports
//! (and monitor callbacks, timers' callbacks, database callbacks) one
//! batch at a time; each thread port has its own thread; a networked node
//! has one *reactor* thread owning every socket, which never runs user
//! code; one process-wide timer thread fires `after` and `cal` time-outs
//! (user closures go to a dispatcher); senders encode on their own
//! thread. The kernel imports nothing
//! of the network: a remote operation crosses `seam.rs`.

#![warn(missing_docs)]
// The examples import what they use: readers copy them.
#![doc(test(attr(deny(unused_imports))))]

/// The README's code, compiled and run as a doctest so that it stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

// The modules holding `impl Node` blocks come first, one per group (so
// rustfmt keeps them in place), in the order a reader of `Node`'s docs
// meets them: rustdoc lists the blocks in declaration order.
mod node;

mod typed;

mod monitor;

mod calls;

mod node_port;

mod configure;

mod net;

mod db;

mod dataconn;

mod lifecycle;

mod stats;

mod busy;
mod context;
mod dispatcher;
mod error;
mod id;
pub mod logcatch;
pub mod message;
mod octets;
mod port;
pub mod rcfile;
pub mod rpc;
mod seam;
mod table;
mod timer;
pub mod transport;

/// The protocols as pure state machines (bytes or packets in, bytes,
/// packets and events out; no sockets, threads or clock), for those who
/// drive them themselves: tests, fuzzing, other implementations:
/// [`transport`] (handshake, auth, framing) and
/// [`db`](crate::protocol::db) (the database and
/// global-node protocol). The protocol notes below are what the rest of
/// the documentation cites as "§N".
///
#[doc = include_str!("../docs/protocol.md")]
pub mod protocol {
    pub use crate::db::protocol as db;
    pub use crate::transport;
}

/// The database protocol under its former name: [`protocol::db`].
#[doc(hidden)]
pub use db::protocol as global;

pub use configure::configure_profile;
pub use context::{self_port, src_node};
pub use dataconn::DataConn;
pub use db::{DbGuard, DbMonGuard};
pub use error::{Error, Result};
pub use id::{NodeId, PortId};
#[cfg(unix)]
pub use lifecycle::Termination;
pub use message::{Message, Reason};
pub use monitor::MonGuard;
pub use net::{Config, STATS_FUNCTION};
pub use node::Node;
pub use octets::Octets;
pub use port::{Mailbox, PortExit};
pub use stats::{NodeStats, PeerState, PeerStats, ThreadPortStats};
pub use timer::Timer;

use once_cell::sync::OnceCell;
use std::time::Duration;

static DEFAULT_NODE: OnceCell<Node> = OnceCell::new();

/// The process-wide node, created on first use with ID `anon/<random>`
/// (without network) unless [`configure`] came first.
///
/// ```
/// use aemp::msg;
/// use std::time::Duration;
/// let (tx, rx) = crossbeam_channel::bounded(1);
/// let p = aemp::port_fn(move |m| tx.send(m).unwrap()); // the free functions use it
/// assert!(aemp::default_node().port_is_local(&p));
/// assert!(aemp::default_node().id().as_str().starts_with("anon/"));
/// aemp::snd(&p, msg!["hi"]);
/// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), msg!["hi"]);
/// ```
pub fn default_node() -> Node {
    DEFAULT_NODE.get_or_init(Node::anonymous).clone()
}

/// Makes the process-wide node a networked node built from `cfg` (see
/// [`Node::with_config`]) and returns it.
///
/// Call it once, before anything uses the default node: if the default
/// node already exists (configured earlier, or created by a free function
/// such as [`port`]), it fails with [`Error::AlreadyConfigured`] and
/// changes nothing.
///
/// ```
/// use aemp::{Config, Error};
/// let node = aemp::configure(Config::new("main/").bind("127.0.0.1:0").secret("s")).unwrap();
/// assert_eq!(aemp::default_node().id(), node.id());
/// assert!(!node.listen_addrs().is_empty()); // it listens
/// let again = aemp::configure(Config::new("other/").secret("s"));
/// assert!(matches!(again, Err(Error::AlreadyConfigured { .. })));
/// ```
pub fn configure(cfg: Config) -> Result<Node> {
    if let Some(existing) = DEFAULT_NODE.get() {
        return Err(Error::AlreadyConfigured {
            node: existing.id().clone(),
        });
    }
    let node = Node::with_config(cfg)?;
    DEFAULT_NODE
        .set(node.clone())
        .map_err(|existing| Error::AlreadyConfigured {
            node: existing.id().clone(),
        })?;
    Ok(node)
}

/// The current node: the one whose port code runs on this thread, else the
/// process-wide [`default_node`].
///
/// ```
/// use aemp::{msg, Node};
/// use std::time::Duration;
/// let mine = Node::new("doc/node").unwrap();
/// let (tx, rx) = crossbeam_channel::bounded(1);
/// let p = mine.port_fn(move |_| tx.send(aemp::node().id().clone()).unwrap());
/// mine.snd(&p, msg!["which node?"]);
/// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), *mine.id()); // inside: its node
/// assert_ne!(aemp::node().id(), mine.id()); // outside: the default node
/// ```
pub fn node() -> Node {
    context::current_node().unwrap_or_else(default_node)
}

/// Wraps `f` so that it runs in the context of the current port when
/// called later (e.g. from a timer): [`self_port`] is set, and a panic
/// kills the port with `die` (the call then returns `None`).
/// Fails outside port context.
///
/// ```
/// use aemp::{msg, Node};
/// use std::time::Duration;
/// let node = Node::new("doc/psub").unwrap();
/// let (tx, rx) = crossbeam_channel::bounded(1);
/// let n = node.clone();
/// let p = node.port_fn(move |_| {
///     // Runs later on a timer, but still as this port.
///     let tx = tx.clone();
///     let mut later = aemp::psub(move || tx.send(aemp::self_port()).unwrap()).unwrap();
///     n.after_fn(Duration::from_millis(10), move || { later(); });
/// });
/// node.snd(&p, msg!["start"]);
/// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), Some(p));
/// assert!(aemp::psub(|| ()).is_err()); // no current port here
/// ```
pub fn psub<R, F: FnMut() -> R>(mut f: F) -> Result<impl FnMut() -> Option<R>> {
    let port = self_port().ok_or(Error::NoCurrentPort { what: "psub" })?;
    let node = node();
    Ok(move || node.peval(&port, &mut f))
}

/// [`Node::port`] on the current node.
///
/// ```
/// use aemp::msg;
/// use std::time::Duration;
/// let (tx, rx) = crossbeam_channel::bounded(1);
/// let p = aemp::rcv(&aemp::port(), "hi", move |args| tx.send(args).unwrap()).unwrap();
/// aemp::snd(&p, msg!["hi", "there"]);
/// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), msg!["there"]);
/// ```
pub fn port() -> PortId {
    node().port()
}

/// [`Node::port_fn`] on the current node.
///
/// ```
/// use aemp::msg;
/// use std::time::Duration;
/// // Inside a callback the free functions act on the callback's node.
/// let node = aemp::Node::new("doc/free-port-fn").unwrap();
/// let (tx, rx) = crossbeam_channel::bounded(1);
/// let spawner = node.port_fn(move |_| {
///     let child = aemp::port_fn(|_| {}); // on "doc/free-port-fn", not the default node
///     tx.send(child).unwrap();
/// });
/// node.snd(&spawner, msg!["go"]);
/// let child = rx.recv_timeout(Duration::from_secs(5)).unwrap();
/// assert!(node.port_is_local(&child));
/// ```
pub fn port_fn(f: impl FnMut(Message) + Send + 'static) -> PortId {
    node().port_fn(f)
}

/// [`Node::port_thread`] on the current node.
///
/// ```
/// use aemp::msg;
/// use std::time::Duration;
/// let (tx, rx) = crossbeam_channel::bounded(1);
/// let p = aemp::port_thread(move |mb| -> aemp::Result<()> {
///     tx.send(mb.get_tag("job")?).unwrap();
///     Ok(())
/// });
/// aemp::snd(&p, msg!["job", 1]);
/// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), msg![1]);
/// ```
pub fn port_thread<R: PortExit>(f: impl FnOnce(&mut Mailbox) -> R + Send + 'static) -> PortId {
    node().port_thread(f)
}

/// [`Node::rcv`] on the current node.
pub fn rcv(port: &PortId, tag: &str, f: impl FnMut(Message) + Send + 'static) -> Result<PortId> {
    node().rcv(port, tag, f)
}

/// [`Node::rcv_default`] on the current node.
pub fn rcv_default(port: &PortId, f: impl FnMut(Message) + Send + 'static) -> Result<PortId> {
    node().rcv_default(port, f)
}

/// [`Node::rcv_remove`] on the current node.
pub fn rcv_remove(port: &PortId, tag: &str) -> Result<PortId> {
    node().rcv_remove(port, tag)
}

/// [`Node::snd`] on the current node.
///
/// ```
/// use aemp::msg;
/// use std::time::Duration;
/// let (tx, rx) = crossbeam_channel::bounded(1);
/// let p = aemp::port_fn(move |m| tx.send(m).unwrap());
/// aemp::snd(&p, msg!["hello", 1]);
/// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), msg!["hello", 1]);
/// ```
pub fn snd(port: &PortId, msg: Message) {
    node().snd(port, msg)
}

/// [`Node::snd_value`] on the current node.
///
/// ```
/// aemp::snd_value(&aemp::port(), &("hello", 1)).unwrap();
/// ```
pub fn snd_value<T: serde::Serialize + ?Sized>(port: &PortId, value: &T) -> Result<()> {
    node().snd_value(port, value)
}

/// [`Node::kil`] on the current node.
///
/// ```
/// use aemp::reason;
/// use std::time::Duration;
/// let p = aemp::port_fn(|_| {});
/// let (tx, rx) = crossbeam_channel::bounded(1);
/// aemp::mon(&p, move |r| tx.send(r).unwrap()).forget();
/// aemp::kil(&p, reason!["stop"]).unwrap();
/// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), reason!["stop"]);
/// ```
pub fn kil(port: &PortId, reason: Reason) -> Result<()> {
    node().kil(port, reason)
}

/// [`Node::mon`] on the current node.
///
/// ```
/// use aemp::{msg, Reason};
/// use std::time::Duration;
/// let p = aemp::port(); // dies on its first message
/// let (tx, rx) = crossbeam_channel::bounded(1);
/// aemp::mon(&p, move |r: Reason| tx.send(r.kind().map(String::from)).unwrap()).forget();
/// aemp::snd(&p, msg!["unexpected"]);
/// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().as_deref(), Some("unhandled_message"));
/// ```
pub fn mon(port: &PortId, f: impl FnOnce(Reason) + Send + 'static) -> MonGuard {
    node().mon(port, f)
}

/// [`Node::mon_link`] on the current node.
pub fn mon_link(port: &PortId, other: &PortId) -> MonGuard {
    node().mon_link(port, other)
}

/// [`Node::mon_self`] on the current node.
pub fn mon_self(port: &PortId) -> Result<MonGuard> {
    node().mon_self(port)
}

/// [`Node::mon_send`] on the current node.
pub fn mon_send(port: &PortId, to: &PortId, msg: Message) -> MonGuard {
    node().mon_send(port, to, msg)
}

/// [`Node::mon_guard`] on the current node.
pub fn mon_guard<T: Send + 'static>(port: &PortId, value: T) -> MonGuard {
    node().mon_guard(port, value)
}

/// [`Node::spawn`] on the current node.
///
/// ```
/// use aemp::msg;
/// use std::time::Duration;
/// let (tx, rx) = crossbeam_channel::bounded(1);
/// aemp::node().register("doc::greeter", move |args| {
///     let tx = tx.clone();
///     aemp::rcv_default(&aemp::self_port().unwrap(), move |m| tx.send((args.clone(), m)).unwrap()).unwrap();
/// });
/// let me = aemp::node().id().clone();
/// let greeter = aemp::spawn(&me, "doc::greeter", msg!["init-arg"]).unwrap();
/// aemp::snd(&greeter, msg!["hello"]);
/// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), (msg!["init-arg"], msg!["hello"]));
/// ```
pub fn spawn(target: &NodeId, func: &str, args: Message) -> Result<PortId> {
    node().spawn(target, func, args)
}

/// [`Node::cal`] on the current node.
pub fn cal(
    port: &PortId,
    msg: Message,
    timeout: Option<Duration>,
    callback: impl FnOnce(Option<Message>) + Send + 'static,
) -> PortId {
    node().cal(port, msg, timeout, callback)
}

/// [`Node::call`] on the current node.
///
/// ```
/// use aemp::msg;
/// use std::time::Duration;
/// let answer = aemp::port_fn(|m| aemp::snd(&m.reply_port().unwrap(), msg![42]));
/// assert_eq!(aemp::call(&answer, msg!["question"], Duration::from_secs(5)).unwrap(), msg![42]);
/// ```
pub fn call(port: &PortId, msg: Message, timeout: Duration) -> Result<Message> {
    node().call(port, msg, timeout)
}

/// [`Node::after`] on the current node.
///
/// ```
/// use aemp::msg;
/// use std::time::Duration;
/// let (tx, rx) = crossbeam_channel::bounded(1);
/// let p = aemp::port_fn(move |m| tx.send(m).unwrap());
/// aemp::after(Duration::from_millis(10), &p, msg!["wake up"]);
/// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), msg!["wake up"]);
/// ```
pub fn after(delay: Duration, port: &PortId, msg: Message) -> Timer {
    node().after(delay, port, msg)
}

/// [`Node::after_fn`] on the current node.
pub fn after_fn(delay: Duration, f: impl FnOnce() + Send + 'static) -> Timer {
    node().after_fn(delay, f)
}

/// [`Node::peval`] on the current node.
pub fn peval<R>(port: &PortId, f: impl FnOnce() -> R) -> Option<R> {
    node().peval(port, f)
}

/// [`Node::db_set`] on the current node.
///
/// ```
/// use aemp::Config;
/// use std::time::Duration;
/// // The process-wide node, networked, and a global node on its own.
/// let node = aemp::configure(Config::new("doc-free-db/").bind("127.0.0.1:0").secret("s")).unwrap();
/// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
/// aemp::db_set("settings", "mode", "fast").unwrap().forget();
/// assert_eq!(node.db_values_wait("settings", Duration::from_secs(10)).unwrap(), [serde_json::json!("fast")]);
/// ```
pub fn db_set(family: &str, key: &str, value: impl Into<serde_json::Value>) -> Result<DbGuard> {
    node().db_set(family, key, value)
}

/// [`Node::db_del`] on the current node.
pub fn db_del(family: &str, keys: &[&str]) -> Result<()> {
    node().db_del(family, keys)
}

/// [`Node::db_reg`] on the current node.
pub fn db_reg(family: &str, port: &PortId) -> Result<DbGuard> {
    node().db_reg(family, port)
}

/// [`Node::db_reg_self`] on the current node (`$SELF`).
pub fn db_reg_self(family: &str) -> Result<DbGuard> {
    node().db_reg_self(family)
}

/// [`Node::db_family`] on the current node.
pub fn db_family(
    family: &str,
    f: impl FnOnce(protocol::db::Family) + Send + 'static,
) -> Result<()> {
    node().db_family(family, f)
}

/// [`Node::db_keys`] on the current node.
pub fn db_keys(family: &str, f: impl FnOnce(Vec<String>) + Send + 'static) -> Result<()> {
    node().db_keys(family, f)
}

/// [`Node::db_values`] on the current node.
pub fn db_values(
    family: &str,
    f: impl FnOnce(Vec<serde_json::Value>) + Send + 'static,
) -> Result<()> {
    node().db_values(family, f)
}

/// [`Node::db_mon`] on the current node.
pub fn db_mon(
    family: &str,
    f: impl FnMut(&protocol::db::DbMonEvent) + Send + 'static,
) -> Result<DbMonGuard> {
    node().db_mon(family, f)
}

/// [`Node::grp_reg`] on the current node.
pub fn grp_reg(group: &str, port: &PortId) -> Result<DbGuard> {
    node().grp_reg(group, port)
}

/// [`Node::grp_get`] on the current node.
pub fn grp_get(group: &str) -> Option<Vec<String>> {
    node().grp_get(group)
}

/// [`Node::grp_mon`] on the current node.
pub fn grp_mon(
    group: &str,
    f: impl FnMut(&[String], &[String], &[String]) + Send + 'static,
) -> Result<DbMonGuard> {
    node().grp_mon(group, f)
}
