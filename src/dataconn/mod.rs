//! Data connections (the original's `AnyEvent::MP::DataConn`): a socket
//! between two nodes, for bulk bytes beside the messages.
//!
//! ```text
//!   caller                                  other node
//!   data_connect ── ["", _expect, id, port, timeout, initfunc, data...] ─►
//!                ── ["", "snd", reply] (round trip: _expect is in place) ─►
//!   reply: the other node's known addresses?
//!     yes: dial them, 2 s apart ──── TCP, greeting `aemp-dataconn;…;dataconn_id=<id>` ─►
//!     no:  ["", _connect, id, own node] ─► it dials us the same way
//!   both ends, handshake done: the socket leaves the reactor (net/handoff.rs)
//!   caller: the callback / data_connect returns   other: initfunc(data, conn)
//! ```
//!
//! - `mod.rs`: the API on [`Node`].
//! - `stream.rs`: [`DataConn`], the blocking byte stream.
//! - `state.rs`: the connections under way, `_expect` and `_connect`, and
//!   the sink the network hands connections to.
//!
//! The handshake is the message protocol's (same secret, same auth, TLS
//! when configured) with the protocol name `aemp-dataconn` and a
//! `dataconn_id` in the greeting; a listener, which greets with `aemp`
//! before it can know, switches. Any failure or the time-out ends it:
//! nothing runs on the other side, and the caller's port is killed with
//! `["AnyEvent::MP::DataConn", "<error>"]`. Every init function and
//! callback runs on a thread of its own (it may block on the stream).

mod state;
mod stream;

pub use stream::DataConn;

use crate::context;
use crate::error::{Error, Result};
use crate::id::{NodeId, PortId};
use crate::message::{Message, Reason};
use crate::net::NodeNet;
use crate::node::Node;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use state::install;

/// How much longer than its time-out [`Node::data_connect`] waits for the
/// outcome (which the time-out itself reports).
const GRACE: Duration = Duration::from_secs(5);

/// # Data connections
impl Node {
    /// Registers `f` under `name` as a data connection's init function:
    /// when another node (or this one) opens a data connection naming
    /// `name`, `f` gets the caller's init data and the connection, on a
    /// thread of its own. The counterpart of registering a Perl function
    /// for `AnyEvent::MP::DataConn::connect_to`.
    ///
    /// Fails on a node without a network.
    ///
    /// ```
    /// use aemp::{msg, Config, Node};
    /// use std::io::{BufRead, BufReader, Write};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-reg-dc/").secret("s")).unwrap();
    /// node.register_dataconn("doc::greet", |args, mut conn| {
    ///     let name = args[0].as_str().unwrap_or("?").to_string();
    ///     writeln!(conn, "hello, {name}").unwrap(); // a blocking stream, on its own thread
    /// }).unwrap();
    /// // To the own node the connection is a socket pair.
    /// let conn = node.data_connect(node.id(), Duration::from_secs(5), "doc::greet", msg!["ann"]).unwrap();
    /// let mut line = String::new();
    /// BufReader::new(conn).read_line(&mut line).unwrap();
    /// assert_eq!(line, "hello, ann\n");
    /// assert!(Node::new("local").unwrap().register_dataconn("x", |_, _| {}).is_err()); // needs a network
    /// ```
    pub fn register_dataconn(
        &self,
        name: &str,
        f: impl Fn(Message, DataConn) + Send + Sync + 'static,
    ) -> Result<()> {
        let st = self.dataconn_state("register_dataconn")?;
        st.register(name, Arc::new(f));
        Ok(())
    }

    /// Opens a data connection to `node` and returns it (blocking up to
    /// `timeout`, plus a few seconds for the outcome). On `node`,
    /// `initfunc` (registered with
    /// [`register_dataconn`](Node::register_dataconn), or a Perl
    /// function) gets `initdata` and the other end. To the own node, the
    /// connection is a socket pair.
    ///
    /// Not on the dispatcher thread (it would wait for itself); from a
    /// port callback use [`data_connect_cb`](Node::data_connect_cb).
    ///
    /// ```
    /// use aemp::{msg, Config, Node};
    /// use std::io::{Read, Write};
    /// use std::time::Duration;
    /// let cfg = |id: &str| Config::new(id).bind("127.0.0.1:0").secret("s");
    /// let (a, b) = (
    ///     Node::with_config(cfg("doc-dc-a/%u")).unwrap(),
    ///     Node::with_config(cfg("doc-dc-b/%u")).unwrap(),
    /// );
    /// a.add_address(b.id(), &b.listen_addrs()[0].to_string()).unwrap();
    /// b.register_dataconn("doc::echo", |args, mut conn| {
    ///     assert_eq!(args, msg!["hi"]);
    ///     let _ = std::io::copy(&mut conn.try_clone().unwrap(), &mut conn);
    /// })
    /// .unwrap();
    /// let mut conn = a
    ///     .data_connect(b.id(), Duration::from_secs(10), "doc::echo", msg!["hi"])
    ///     .unwrap();
    /// conn.write_all(b"ping").unwrap();
    /// let mut got = [0; 4];
    /// conn.read_exact(&mut got).unwrap();
    /// assert_eq!(&got, b"ping");
    /// ```
    pub fn data_connect(
        &self,
        node: &NodeId,
        timeout: Duration,
        initfunc: &str,
        initdata: Message,
    ) -> Result<DataConn> {
        if context::on_dispatcher() {
            return Err(Error::WouldBlockDispatcher {
                what: "data_connect",
            });
        }
        let st = self.dataconn_state("data_connect")?;
        let (tx, rx) = crossbeam_channel::bounded(2);
        // The port the outcome kills on failure (the other node may too).
        let port = self.port_fn(|_| {});
        let etx = tx.clone();
        let guard = self.mon(&port, move |reason| {
            let _ = etx.send(Err(reason));
        });
        let cb = Box::new(move |conn| {
            let _ = tx.send(Ok(conn));
        });
        self.data_start(&st, node, timeout, initfunc, initdata, port.clone(), cb);
        let outcome = rx.recv_timeout(timeout + GRACE);
        drop(guard);
        let _ = self.kil(&port, Reason::normal());
        let problem = match outcome {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(reason)) => match reason.get(1).and_then(Value::as_str) {
                Some(why) if reason.kind() == Some(state::PACKAGE) => why.to_string(),
                _ => reason.to_string(),
            },
            Err(_) => format!("no outcome within {timeout:?}"),
        };
        Err(Error::DataConn {
            node: node.to_string(),
            problem,
        })
    }

    /// The original's `connect_to`: opens a data connection to `node`,
    /// then `cb` gets it (on a thread of its own); on `node`, `initfunc`
    /// gets `initdata` and the other end. Must run in port context: on any
    /// error or after `timeout`, nothing runs on `node` and the current
    /// port is killed with `["AnyEvent::MP::DataConn", "<error>"]`.
    ///
    /// ```
    /// use aemp::{msg, Config, Node};
    /// use std::io::Read;
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-dccb/%u").bind("127.0.0.1:0").secret("s"))
    ///     .unwrap();
    /// node.register_dataconn("doc::hello", |_, mut conn| {
    ///     use std::io::Write;
    ///     conn.write_all(b"hello").unwrap();
    /// })
    /// .unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let n = node.clone();
    /// node.peval(&node.port_fn(|_| {}), move || {
    ///     n.data_connect_cb(n.id(), Duration::from_secs(5), "doc::hello", msg![], move |mut c| {
    ///         let mut s = String::new();
    ///         c.read_to_string(&mut s).unwrap();
    ///         tx.send(s).unwrap();
    ///     })
    ///     .unwrap();
    /// });
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "hello");
    /// ```
    pub fn data_connect_cb(
        &self,
        node: &NodeId,
        timeout: Duration,
        initfunc: &str,
        initdata: Message,
        cb: impl FnOnce(DataConn) + Send + 'static,
    ) -> Result<()> {
        let port = context::self_port().ok_or(Error::NoCurrentPort {
            what: "data_connect_cb",
        })?;
        let st = self.dataconn_state("data_connect_cb")?;
        self.data_start(&st, node, timeout, initfunc, initdata, port, Box::new(cb));
        Ok(())
    }

    fn dataconn_state(&self, what: &'static str) -> Result<Arc<state::State>> {
        state::of(self).ok_or_else(|| Error::NoNetwork {
            what,
            node: self.id().clone(),
        })
    }

    /// Starts opening a data connection for `port` (see the module docs).
    #[allow(clippy::too_many_arguments)]
    fn data_start(
        &self,
        st: &Arc<state::State>,
        node: &NodeId,
        timeout: Duration,
        initfunc: &str,
        initdata: Message,
        port: PortId,
        cb: Box<dyn FnOnce(DataConn) + Send>,
    ) {
        if node == self.id() {
            return self.data_local(st, initfunc, initdata, port, cb);
        }
        let id = st.next_id(self.id());
        st.add_caller(&id, node, port.clone(), timeout, cb);
        let mut args = crate::msg![id.as_str(), port.as_str(), timeout.as_secs_f64(), initfunc];
        args.extend(initdata);
        self.snd_to_func(node, state::EXPECT, args);
        // A round trip, so that `_expect` is in place before we connect.
        let weak = Arc::downgrade(st);
        let me = self.id().to_string();
        let peer = node.clone();
        let net = self.net().map(Arc::downgrade);
        let reply = self.port_fn(move |_| {
            if let Some(p) = context::self_port() {
                if let Some(n) = net
                    .as_ref()
                    .and_then(|n| n.upgrade())
                    .and_then(|n| n.node())
                {
                    let _ = n.kil(&p, Reason::normal());
                }
            }
            let (Some(st), Some(net)) = (weak.upgrade(), net.as_ref().and_then(|n| n.upgrade()))
            else {
                return;
            };
            if !st.is_pending(&id) {
                return;
            }
            if net.known_addresses(peer.as_str()).is_empty() {
                // No listener known: it connects to us.
                if let Some(n) = net.node() {
                    n.snd_to_func(&peer, state::CONNECT, crate::msg![id.as_str(), me.as_str()]);
                }
            } else {
                st.dial(&id, peer.as_str());
            }
        });
        self.snd(&node.node_port(), crate::msg!["snd", reply.as_str()]);
        // The reply port goes when the attempt can no longer use it.
        let weak_node = Arc::downgrade(&self.inner);
        crate::timer::schedule(timeout + GRACE, move || {
            if let Some(inner) = weak_node.upgrade() {
                let _ = Node { inner }.kil(&reply, Reason::normal());
            }
        });
    }

    /// A data connection to the own node: a socket pair.
    fn data_local(
        &self,
        st: &Arc<state::State>,
        initfunc: &str,
        initdata: Message,
        port: PortId,
        cb: Box<dyn FnOnce(DataConn) + Send>,
    ) {
        let Some(init) = st.init(initfunc) else {
            let why = format!(
                "{initfunc}: no such data connection function on {}",
                self.id()
            );
            let _ = self.kil(&port, state::reason(&why));
            return;
        };
        let (a, b) = match std::os::unix::net::UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => {
                let why = format!("cannot create local socketpair: {e}");
                let _ = self.kil(&port, state::reason(&why));
                return;
            }
        };
        let me = self.id().clone();
        let (ours, theirs) = (DataConn::local(me.clone(), a), DataConn::local(me, b));
        let spawn = |f: Box<dyn FnOnce() + Send>| {
            if let Err(e) = std::thread::Builder::new()
                .name("aemp-dataconn".into())
                .spawn(f)
            {
                log::error!("data connection: cannot start its thread: {e}");
            }
        };
        spawn(Box::new(move || init(initdata, theirs)));
        spawn(Box::new(move || cb(ours)));
    }
}
