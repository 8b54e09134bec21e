//! A node: its port table, and the paths of `snd`, `kil` and port death.

use crate::context;
use crate::dispatcher::{self, Job};
use crate::error::{Error, Result};
use crate::id::{NameGen, NodeId, PortId};
use crate::lifecycle::Lifecycle;
use crate::message::{Message, Reason};
use crate::monitor::MonitorEntry;
use crate::node_port::Functions;
use crate::port::{
    spawn_port_thread, AttachError, Callback, DefaultHandler, HandlerChange, Handlers, IdleKill,
    Item, Mailbox, PortCell, PortExit, Pushed,
};
use crate::seam::{KernelOptions, Network};
use crate::table::PortTable;
use crossbeam_channel::Sender;
use parking_lot::RwLock;
use std::fmt;
use std::sync::Arc;

/// A node: a set of ports with one ID, one dispatcher thread that runs
/// their callbacks, and (later) its network connections.
///
/// `Node` is a cheap handle (clone it freely). Several nodes may live in
/// one process; the free functions of the crate use the *current* node
/// (the one whose port code is running) or the process-wide
/// [`default_node`](crate::default_node).
///
/// ```
/// use aemp::{msg, Node};
/// let node = Node::new("doc-node").unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// let p = node.port_fn(move |m| tx.send(m).unwrap());
/// node.snd(&p, msg!["hello", 1]);
/// assert_eq!(rx.recv().unwrap(), msg!["hello", 1]);
/// ```
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

pub(crate) struct NodeInner {
    id: NodeId,
    node_port: PortId,
    names: NameGen,
    /// Local ports by name (`""` is the node port).
    pub(crate) ports: PortTable,
    pub(crate) jobs: Sender<Job>,
    pub(crate) functions: RwLock<Functions>,
    /// The network, set once by `Node::with_config` (see `seam.rs`).
    network: once_cell::sync::OnceCell<Box<dyn Network>>,
    options: KernelOptions,
    /// Shutdown and waiting for it (`lifecycle.rs`).
    pub(crate) lifecycle: Lifecycle,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Node({})", self.inner.id)
    }
}

/// # Creating nodes, ports and callbacks; sending
impl Node {
    /// Creates a node with the given ID and starts its dispatcher thread.
    ///
    /// ```
    /// use aemp::Node;
    /// let node = Node::new("doc/new").unwrap();
    /// assert_eq!(node.id().as_str(), "doc/new");
    /// assert_eq!(node.node_port().as_str(), "doc/new"); // the node port has the empty name
    /// assert!(Node::new("no#hash").is_err()); // '#' separates node and port
    /// ```
    pub fn new(id: impl AsRef<str>) -> Result<Node> {
        Node::with_options(NodeId::new(id)?, KernelOptions::default())
    }

    /// [`Node::new`] with kernel settings (a networked node's come from
    /// its [`Config`](crate::Config)).
    pub(crate) fn with_options(id: NodeId, options: KernelOptions) -> Result<Node> {
        let (jobs, queue) = crossbeam_channel::unbounded();
        let node = Node {
            inner: Arc::new(NodeInner {
                node_port: id.node_port(),
                id,
                names: NameGen::new(),
                ports: PortTable::new(),
                jobs,
                functions: RwLock::new(Functions::default()),
                network: once_cell::sync::OnceCell::new(),
                options,
                lifecycle: Lifecycle::new(),
            }),
        };
        let dispatcher = dispatcher::start(&node, queue);
        node.inner.lifecycle.set_dispatcher(dispatcher);
        node.insert("", Handlers::new(DefaultHandler::NodePort), |_| {});
        Ok(node)
    }

    /// A node with a random ID `anon/<random>`.
    ///
    /// ```
    /// let (a, b) = (aemp::Node::anonymous(), aemp::Node::anonymous());
    /// assert!(a.id().as_str().starts_with("anon/"));
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn anonymous() -> Node {
        Node::new(format!("anon/{}", NameGen::random_text(10))).expect("valid generated node ID")
    }

    /// This node's ID.
    pub fn id(&self) -> &NodeId {
        &self.inner.id
    }

    /// This node's node port (the port with the empty name).
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/node_port").unwrap();
    /// assert!(node.node_port().is_node_port());
    /// // Node-port requests run registered functions by name (what peers send).
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// node.register("doc::ping", move |args| tx.send(args).unwrap());
    /// node.snd(node.node_port(), msg!["doc::ping", 1]);
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), msg![1]);
    /// ```
    pub fn node_port(&self) -> &PortId {
        &self.inner.node_port
    }

    /// True if `port` belongs to this node.
    ///
    /// ```
    /// use aemp::{Node, PortId};
    /// let node = Node::new("doc/local").unwrap();
    /// assert!(node.port_is_local(&node.port()));
    /// assert!(!node.port_is_local(&PortId::parse("elsewhere#p").unwrap()));
    /// ```
    pub fn port_is_local(&self, port: &PortId) -> bool {
        port.node() == self.inner.id.as_str()
    }

    /// How many ports (including the node port) are alive.
    ///
    /// ```
    /// use aemp::{Node, Reason};
    /// let node = Node::new("doc/port_count").unwrap();
    /// assert_eq!(node.port_count(), 1); // the node port
    /// let p = node.port_fn(|_| {});
    /// assert_eq!(node.port_count(), 2);
    /// node.kil(&p, Reason::normal()).unwrap(); // idle: gone at once
    /// assert_eq!(node.port_count(), 1);
    /// ```
    pub fn port_count(&self) -> usize {
        self.inner.ports.len()
    }

    /// A new port without a callback: its first message kills it with
    /// `["unhandled_message", "no callback found for message '<tag>'"]`,
    /// unless callbacks are added with [`rcv`](Node::rcv).
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/port").unwrap();
    /// let port = node.port();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// node.mon(&port, move |reason| tx.send(reason).unwrap()).forget();
    /// node.snd(&port, msg!["hello"]); // nobody handles "hello"
    /// let reason = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    /// assert_eq!(reason.kind(), Some("unhandled_message"));
    /// ```
    pub fn port(&self) -> PortId {
        self.new_port(Handlers::new(DefaultHandler::KillOnMessage))
    }

    /// A new port whose default callback gets every message (whole, tag
    /// included) that no tag callback takes. Callbacks run on the node's
    /// dispatcher, one message at a time, in arrival order, with
    /// [`self_port`](crate::self_port) set; a panic kills the port with
    /// `["die", <panic text>]`. Callbacks must not block: use a
    /// [thread port](Node::port_thread) for blocking work.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/port_fn").unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let mut count = 0;
    /// let counter = node.port_fn(move |m| {
    ///     count += 1; // the callback owns its state; calls never overlap
    ///     tx.send((count, m)).unwrap();
    /// });
    /// node.snd(&counter, msg!["a"]);
    /// node.snd(&counter, msg!["b", 2]);
    /// let t = Duration::from_secs(5);
    /// assert_eq!(rx.recv_timeout(t).unwrap(), (1, msg!["a"]));
    /// assert_eq!(rx.recv_timeout(t).unwrap(), (2, msg!["b", 2]));
    /// ```
    pub fn port_fn(&self, f: impl FnMut(Message) + Send + 'static) -> PortId {
        self.new_port(Handlers::new(DefaultHandler::Callback(Box::new(f))))
    }

    /// A new port with its own OS thread and selective-receive
    /// [`Mailbox`]. When `f` returns the port is killed normally (or with
    /// `die` for an `Err`, see [`PortExit`]); a panic kills it with `die`.
    /// Tag callbacks added with [`rcv`](Node::rcv) still take their
    /// messages before the mailbox.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/port_thread").unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let adder = node.port_thread(move |mb| -> aemp::Result<()> {
    ///     // Blocking is fine here: this is the port's own thread.
    ///     let (a,): (i64,) = mb.get_tag("first")?.decode()?; // the tag is gone
    ///     let (b,): (i64,) = mb.get_tag("second")?.decode()?;
    ///     tx.send(a + b).unwrap();
    ///     Ok(()) // the port ends normally
    /// });
    /// node.snd(&adder, msg!["second", 2]); // waits in the mailbox until wanted
    /// node.snd(&adder, msg!["first", 40]);
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 42);
    /// ```
    pub fn port_thread<R: PortExit>(
        &self,
        f: impl FnOnce(&mut Mailbox) -> R + Send + 'static,
    ) -> PortId {
        let name = self.inner.names.next();
        let cell = self.insert(
            name.as_str(),
            Handlers::new(DefaultHandler::Thread),
            PortCell::init_thread_port,
        );
        let id = cell.id.clone();
        spawn_port_thread(self, cell, f);
        id
    }

    /// Attaches a thread to an existing local port (`rcv_async`): from now
    /// on, messages no tag callback takes go to the thread's mailbox.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/rcv_thread").unwrap();
    /// let port = node.port();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// node.rcv_thread(&port, move |mb| -> aemp::Result<()> {
    ///     tx.send(mb.get()?).unwrap();
    ///     Ok(())
    /// }).unwrap();
    /// node.snd(&port, msg!["job", 1]);
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), msg!["job", 1]);
    /// ```
    pub fn rcv_thread<R: PortExit>(
        &self,
        port: &PortId,
        f: impl FnOnce(&mut Mailbox) -> R + Send + 'static,
    ) -> Result<PortId> {
        let cell = self.local_cell("rcv_thread", port)?;
        match cell.attach_thread() {
            Ok(()) => {}
            Err(AttachError::Dead) => return Err(no_such_port("rcv_thread", port)),
            Err(AttachError::AlreadyAttached) => {
                return Err(Error::ThreadAlreadyAttached { port: port.clone() })
            }
        }
        self.change(&cell, HandlerChange::AttachThread);
        spawn_port_thread(self, cell, f);
        Ok(port.clone())
    }

    /// Sets (or replaces) the callback for messages whose element 0 is
    /// `tag`. It gets the message *without* the tag. Returns the port, so
    /// `node.rcv(&node.port(), "reply", f)?` creates and sets up a port.
    ///
    /// Changes made from inside the port's own callbacks apply before its
    /// next message; changes from elsewhere apply in order with the
    /// messages sent to the port from the same thread.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/rcv").unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let tx2 = tx.clone();
    /// let port = node.rcv(&node.port(), "add", move |args| {
    ///     // ["add", 1, 2] arrives as [1, 2]
    ///     let (a, b): (i64, i64) = args.decode().unwrap();
    ///     tx.send(a + b).unwrap();
    /// }).unwrap();
    /// node.rcv(&port, "neg", move |args| tx2.send(-args[0].as_i64().unwrap()).unwrap()).unwrap();
    /// node.snd(&port, msg!["add", 1, 2]);
    /// node.snd(&port, msg!["neg", 5]);
    /// let t = Duration::from_secs(5);
    /// assert_eq!((rx.recv_timeout(t).unwrap(), rx.recv_timeout(t).unwrap()), (3, -5));
    /// ```
    pub fn rcv(
        &self,
        port: &PortId,
        tag: &str,
        f: impl FnMut(Message) + Send + 'static,
    ) -> Result<PortId> {
        let cell = self.local_cell("rcv", port)?;
        self.change(&cell, HandlerChange::Tag(tag.to_string(), Box::new(f)));
        Ok(port.clone())
    }

    /// Sets (or replaces) the default callback of a local port.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/rcv_default").unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let tx2 = tx.clone();
    /// let port = node.rcv(&node.port(), "known", move |_| tx.send("known".to_string()).unwrap()).unwrap();
    /// // Everything else, whole (tag included), instead of killing the port.
    /// node.rcv_default(&port, move |m| tx2.send(format!("other: {m}")).unwrap()).unwrap();
    /// node.snd(&port, msg!["surprise", 1]);
    /// node.snd(&port, msg!["known"]);
    /// let t = Duration::from_secs(5);
    /// assert_eq!(rx.recv_timeout(t).unwrap(), r#"other: ["surprise",1]"#);
    /// assert_eq!(rx.recv_timeout(t).unwrap(), "known");
    /// ```
    pub fn rcv_default(
        &self,
        port: &PortId,
        f: impl FnMut(Message) + Send + 'static,
    ) -> Result<PortId> {
        let cell = self.local_cell("rcv_default", port)?;
        let cb: Callback = Box::new(f);
        self.change(&cell, HandlerChange::Default(cb));
        Ok(port.clone())
    }

    /// Removes the callback for `tag`; later `tag` messages go to the
    /// default callback.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/rcv_remove").unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let tx2 = tx.clone();
    /// let port = node.port_fn(move |m| tx.send(format!("default {m}")).unwrap());
    /// node.rcv(&port, "ping", move |_| tx2.send("ping".to_string()).unwrap()).unwrap();
    /// node.snd(&port, msg!["ping"]);
    /// node.rcv_remove(&port, "ping").unwrap(); // in order with the sends
    /// node.snd(&port, msg!["ping"]);
    /// let t = Duration::from_secs(5);
    /// assert_eq!(rx.recv_timeout(t).unwrap(), "ping");
    /// assert_eq!(rx.recv_timeout(t).unwrap(), r#"default ["ping"]"#);
    /// ```
    pub fn rcv_remove(&self, port: &PortId, tag: &str) -> Result<PortId> {
        let cell = self.local_cell("rcv_remove", port)?;
        self.change(&cell, HandlerChange::RemoveTag(tag.to_string()));
        Ok(port.clone())
    }

    /// Sends `msg` to `port`. Never blocks, never fails: a message to a
    /// port that does not exist is dropped silently. A local send never
    /// serialises; the message is moved to the receiver. Messages from one
    /// thread to one port arrive in send order. Messages to different
    /// ports of one remote node may be reordered: a small message
    /// overtakes large ones (16 KiB or more encoded) queued for another
    /// port, while requests to the node (`kil`, `mon`, `spawn`) keep their
    /// place in the stream (Erlang, too, orders only per pair of processes).
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/snd").unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let port = node.port_fn(move |m| tx.send(m).unwrap());
    /// for i in 0..3 {
    ///     node.snd(&port, msg!["n", i]);
    /// }
    /// let got: Vec<_> = (0..3).map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap()).collect();
    /// assert_eq!(got, [msg!["n", 0], msg!["n", 1], msg!["n", 2]]); // in send order
    /// node.kil(&port, aemp::Reason::normal()).unwrap();
    /// node.snd(&port, msg!["n", 3]); // to a dead port: dropped, no error
    /// ```
    pub fn snd(&self, port: &PortId, msg: Message) {
        crate::busy::note_send();
        // A stream of messages to one local port: its cell is at hand, and
        // comparing IDs is a pointer comparison when the caller's `PortId`
        // is a clone of the port's own.
        let item = match self.offer_to_last(|id| id == port, Item::Msg(msg)) {
            Ok(()) => return,
            Err(item) => item,
        };
        if self.inner.lifecycle.is_over() {
            log::trace!("dropping message to {port}: the node is shut down");
            return;
        }
        if !self.port_is_local(port) {
            let Item::Msg(msg) = item else { unreachable!() };
            return self.snd_remote(port, msg);
        }
        if port.is_node_port() {
            let Item::Msg(msg) = item else { unreachable!() };
            return crate::node_port::route(self, msg, None);
        }
        if self.deliver_via_table(port.name(), item).is_err() {
            log::trace!("dropping message to nonexistent port {port}");
        }
    }

    /// Puts `item` into the inbox of the local port `name`; gives it back
    /// if there is no such port.
    fn deliver_local(&self, name: &str, item: Item) -> std::result::Result<(), Item> {
        match self.offer_to_last(|id| id.name() == name, item) {
            Ok(()) => Ok(()),
            Err(item) => self.deliver_via_table(name, item),
        }
    }

    /// Offers `item` to a cell this thread delivered to lately (one of the
    /// last two), if `wanted` says it is the destination.
    fn offer_to_last(
        &self,
        wanted: impl Fn(&PortId) -> bool,
        item: Item,
    ) -> std::result::Result<(), Item> {
        self.inner
            .ports
            .offer_to_last(wanted, item, |cell, item| self.offer(cell, item))
    }

    /// [`deliver_local`](Self::deliver_local) through the port table; the
    /// cell found becomes this thread's last one.
    fn deliver_via_table(&self, name: &str, item: Item) -> std::result::Result<(), Item> {
        let Some(cell) = self.inner.ports.get(name) else {
            return Err(item);
        };
        let delivered = self.offer(&cell, item);
        self.inner.ports.remember(cell);
        delivered
    }

    /// Pushes into a cell's inbox, scheduling it if needed; gives the item
    /// back if the port is dead.
    fn offer(&self, cell: &Arc<PortCell>, item: Item) -> std::result::Result<(), Item> {
        match cell.push(item) {
            Pushed::Done => Ok(()),
            Pushed::Schedule => {
                self.schedule(cell.clone());
                Ok(())
            }
            Pushed::Dead(item) => Err(item),
        }
    }

    /// Sends a message whose element 0 is the destination port ID (the
    /// original's `snd @msg`).
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/snd_list").unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let port = node.port_fn(move |m| tx.send(m).unwrap());
    /// node.snd_list(msg![&port, "hi"]).unwrap();
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), msg!["hi"]);
    /// assert!(node.snd_list(msg![42]).is_err()); // a port ID is a string
    /// ```
    pub fn snd_list(&self, msg: Message) -> Result<()> {
        // (Read without making the vector of a compact message.)
        let Some(port) = msg.port_at(0) else {
            return Err(Error::InvalidPortId {
                id: String::new(),
                problem: "the message is empty, so it names no port",
            });
        };
        self.snd(&port?, msg.without_tag());
        Ok(())
    }

    /// Kills `port` with `reason` (empty: a normal kill).
    ///
    /// Monitors run later on the dispatcher, never inside `kil`. Messages
    /// sent to a callback port before the kill (from the same thread) are
    /// processed first; later ones are dropped. A thread port's thread
    /// stops at its next `get`, which returns [`Error::Killed`]: messages
    /// it has not taken yet are dropped with the port. Killing a dead or unknown
    /// port does nothing; killing a node port is an error. Inside the
    /// port's own callback the kill takes effect when the callback returns.
    ///
    /// A callback port that has nothing queued or running is gone when
    /// `kil` returns (there is nothing to process first): its callbacks
    /// are dropped on the calling thread, its monitors fire later on the
    /// dispatcher, and a `mon` set afterwards reports `no_such_port`.
    ///
    /// ```
    /// use aemp::{reason, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/kil").unwrap();
    /// let worker = node.port_fn(|_| {});
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// node.mon(&worker, move |r| tx.send(r).unwrap()).forget();
    /// node.kil(&worker, reason!["shutdown", "no more work"]).unwrap();
    /// let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    /// assert_eq!(r, reason!["shutdown", "no more work"]);
    /// assert!(node.kil(node.node_port(), reason![]).is_err()); // a node port cannot die
    /// ```
    pub fn kil(&self, port: &PortId, reason: Reason) -> Result<()> {
        if port.is_node_port() {
            return Err(Error::KillNodePort { port: port.clone() });
        }
        if !self.port_is_local(port) {
            self.kil_remote(port, reason);
            return Ok(());
        }
        if let Some(cell) = self.lookup(port.name()) {
            self.kill_cell(&cell, reason);
        }
        Ok(())
    }

    pub(crate) fn kill_cell(&self, cell: &Arc<PortCell>, reason: Reason) {
        if context::is_processing(cell) {
            context::set_kill_self(reason);
        } else if !self.kill_idle(cell, &reason) {
            self.push(cell, Item::Kill(reason));
        }
    }

    /// Kills at once a callback port with nothing in its inbox and no
    /// callback running ([`PortCell::kill_if_idle`]); `false` if it is not
    /// such a port. Only the monitors need the dispatcher (they never run
    /// inside `kil`); the port table stays with the calling thread, which
    /// makes short-lived ports cheap.
    fn kill_idle(&self, cell: &Arc<PortCell>, reason: &Reason) -> bool {
        let monitors = match cell.kill_if_idle() {
            IdleKill::AlreadyDead => return true,
            IdleKill::Busy => return false,
            IdleKill::Killed(monitors) => monitors,
        };
        self.forget_dead(cell, &monitors, reason, false);
        if !monitors.is_empty() {
            let (node, reason) = (self.clone(), reason.clone());
            self.task(move || {
                for m in monitors {
                    node.fire(m.action, &reason);
                }
            });
        }
        cell.drop_callbacks();
        true
    }

    /// Retires a blocking call's reply port at once, without a trip
    /// through the dispatcher, unless someone monitors it.
    pub(crate) fn close_reply_port(&self, cell: &Arc<PortCell>) {
        if cell.retire_reply_port() {
            self.inner.ports.remove(cell);
        } else {
            self.kill_cell(cell, Reason::normal());
        }
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<Arc<PortCell>> {
        self.inner.ports.get(name)
    }

    fn local_cell(&self, what: &'static str, port: &PortId) -> Result<Arc<PortCell>> {
        if !self.port_is_local(port) {
            return Err(Error::NotLocal {
                what,
                port: port.clone(),
            });
        }
        if port.is_node_port() {
            return Err(Error::NodePort {
                what,
                port: port.clone(),
            });
        }
        self.lookup(port.name())
            .ok_or_else(|| no_such_port(what, port))
    }

    fn new_port(&self, handlers: Handlers) -> PortId {
        let name = self.inner.names.next();
        self.insert(name.as_str(), handlers, |_| {}).id.clone()
    }

    /// Creates and registers a port cell under a fresh `name`.
    pub(crate) fn insert(
        &self,
        name: &str,
        handlers: Handlers,
        setup: impl FnOnce(&PortCell),
    ) -> Arc<PortCell> {
        let cell = self.new_cell(PortId::from_parts(self.inner.id.as_str(), name), handlers);
        setup(&cell);
        let fresh = self.inner.ports.insert(&cell);
        debug_assert!(fresh, "generated port names are unique");
        self.born(&cell);
        cell
    }

    /// A cell for `id`, not yet in the table.
    pub(crate) fn new_cell(&self, id: PortId, handlers: Handlers) -> Arc<PortCell> {
        let hash = self.inner.ports.hash_of(id.name());
        Arc::new(PortCell::new(id, hash, handlers))
    }

    /// Registers a cell under a name chosen elsewhere (spawn); `false` if
    /// the name is taken.
    pub(crate) fn insert_named(&self, cell: &Arc<PortCell>) -> bool {
        let fresh = self.inner.ports.insert(cell);
        if fresh {
            self.born(cell);
        }
        fresh
    }

    pub(crate) fn new_name(&self) -> crate::id::Name {
        self.inner.names.next()
    }

    pub(crate) fn new_spawn_name(&self) -> String {
        self.inner.names.next_spawn()
    }

    fn change(&self, cell: &Arc<PortCell>, change: HandlerChange) {
        if context::is_processing(cell) {
            context::push_pending(change);
        } else {
            self.push(cell, Item::Change(Box::new(change)));
        }
    }

    /// Queues a function call for the node port's turn on the dispatcher.
    pub(crate) fn push_node_port(&self, msg: Message, src: Option<&Arc<NodeId>>) {
        if let Some(cell) = self.lookup("") {
            let item = match src {
                Some(src) => Item::Remote(msg, src.clone()),
                None => Item::Msg(msg),
            };
            self.push(&cell, item);
        }
    }

    pub(crate) fn push(&self, cell: &Arc<PortCell>, item: Item) {
        let _ = self.offer(cell, item);
    }

    pub(crate) fn schedule(&self, cell: Arc<PortCell>) {
        let Some(cell) = context::try_defer(self, cell) else {
            return;
        };
        let Some(cell) = crate::dispatcher::schedule_own(self, cell) else {
            return;
        };
        self.schedule_shared(cell);
    }

    /// Puts `cell` into the run queue that every thread sends into.
    pub(crate) fn schedule_shared(&self, cell: Arc<PortCell>) {
        // The receiver lives as long as the node: a failed send means the
        // node is being torn down, and then nothing is left to deliver to.
        let _ = self.inner.jobs.send(Job::Port(cell));
    }

    /// Runs `f` on the dispatcher, outside any port context.
    pub(crate) fn task(&self, f: impl FnOnce() + Send + 'static) {
        let _ = self.inner.jobs.send(Job::Task(Box::new(f)));
    }

    /// The port dies ([`PortCell::die`]): forget it, fire its monitors.
    /// Runs on the dispatcher.
    pub(crate) fn die(&self, cell: &Arc<PortCell>, reason: Reason, quiet: bool) {
        let Some(monitors) = cell.die(&reason) else {
            return;
        };
        self.forget_dead(cell, &monitors, &reason, quiet);
        for m in monitors {
            self.fire(m.action, &reason);
        }
    }

    /// Takes a cell just marked dead out of the table. An abnormal death
    /// that no monitor tells a user of (none, or only aemp's own) is
    /// logged at WARN: the crash report (unless `quiet`).
    fn forget_dead(
        &self,
        cell: &Arc<PortCell>,
        monitors: &[MonitorEntry],
        reason: &Reason,
        quiet: bool,
    ) {
        self.inner.ports.remove(cell);
        // The ports a shutdown kills are no crash.
        let shutdown = self.inner.lifecycle.reason() == Some(reason);
        if !reason.is_normal()
            && !quiet
            && !shutdown
            && !monitors.iter().any(|m| m.action.tells_user())
        {
            log::warn!(
                "port {} died with reason {reason}, and no monitor received it (crash report)",
                cell.id
            );
        }
    }

    /// The number of ports and each thread port's mailbox length.
    pub(crate) fn port_stats(&self) -> (usize, Vec<crate::stats::ThreadPortStats>) {
        let mut threads = Vec::new();
        self.inner.ports.for_each(|cell| {
            if let Some(mailbox) = cell.arrivals_len() {
                threads.push(crate::stats::ThreadPortStats {
                    port: cell.id.to_string(),
                    mailbox,
                });
            }
        });
        (self.port_count(), threads)
    }

    /// The network, if this node has one.
    pub(crate) fn network(&self) -> Option<&dyn Network> {
        self.inner.network.get().map(|n| &**n)
    }

    /// Sets the node's network; `false` if it had one already.
    pub(crate) fn set_network(&self, network: Box<dyn Network>) -> bool {
        self.inner.network.set(network).is_ok()
    }

    /// The kernel settings the node was built with.
    pub(crate) fn options(&self) -> &KernelOptions {
        &self.inner.options
    }

    fn snd_remote(&self, port: &PortId, msg: Message) {
        match self.network() {
            Some(net) => net.send(port.node(), port.name(), msg),
            None => log::debug!("dropping message to {port}: this node has no network"),
        }
    }

    fn kil_remote(&self, port: &PortId, reason: Reason) {
        if self.inner.lifecycle.is_over() {
            return log::debug!("cannot kill {port}: this node is shut down");
        }
        match self.network() {
            Some(net) => net.kill(port, reason),
            None => log::debug!("cannot kill {port}: this node has no network"),
        }
    }

    /// Delivers a message that arrived from node `src` to the local port
    /// `name` (the reactor's path); [`src_node`](crate::src_node) is set
    /// while a callback handles it.
    pub(crate) fn deliver_from(&self, name: &str, msg: Message, src: &Arc<NodeId>) {
        if self
            .deliver_local(name, Item::Remote(msg, src.clone()))
            .is_err()
        {
            log::trace!("dropping message from {src} to nonexistent port {name:?}");
        }
    }
}

pub(crate) fn no_such_port(what: &'static str, port: &PortId) -> Error {
    Error::NoSuchPort {
        what,
        port: port.clone(),
    }
}
