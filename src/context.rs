//! The thread-local *current port* context (`$SELF` of the original).
//!
//! It is set while a port callback runs on the dispatcher, for the whole
//! life of a thread port's thread, and inside `peval`.
//!
//! Two things travel through it only because user code stands between
//! their ends, and user code has no value to pass on:
//! - the handler changes and self-kill a callback asks of its own port,
//!   which the dispatcher's turn ([`Processing`]) applies right after the
//!   callback returns (before the next message), without any lock;
//! - the network reactor's deferred schedules ([`defer_schedules`]): the
//!   ports scheduled while one chunk of packets is routed. They are
//!   scheduled by `kil`, spawns, node-port requests, monitor actions and
//!   the global service alike, deep inside `net/`, so the reactor's read
//!   keeps this thread-local rather than a value passed down.

use crate::message::Reason;
use crate::node::Node;
use crate::port::{HandlerChange, PortCell};
use crate::{NodeId, PortId};
use std::cell::{Cell, RefCell};
use std::sync::Arc;

#[derive(Default)]
struct Ctx {
    node: Option<Node>,
    /// Set by thread ports and `peval`; else the processed port is current.
    port: Option<PortId>,
    /// The port whose handlers this thread owns right now (dispatcher only).
    processing: Option<Arc<PortCell>>,
    /// What the running callback asked of its own port (see [`Processing`]).
    pending: Vec<HandlerChange>,
    kill_self: Option<Reason>,
}

type Deferred = Vec<(Node, Arc<PortCell>)>;

// The accessors that sending, killing and monitoring use take
// `try_with`: a destructor may send while its thread exits, after these
// are gone (they then read as empty).
thread_local! {
    /// Ports to schedule when the current chunk of incoming packets is
    /// routed (the reactor's thread only), see [`defer_schedules`].
    static DEFERRED: RefCell<Option<Deferred>> = const { RefCell::new(None) };
    /// The node that sent the message being handled (`$SRCNODE`).
    static SRC: RefCell<Option<NodeId>> = const { RefCell::new(None) };
    static CTX: RefCell<Ctx> = RefCell::new(Ctx::default());
    static ON_DISPATCHER: Cell<bool> = const { Cell::new(false) };
    /// Panics are caught here and turned into kill reasons: the panic hook
    /// logs them instead of printing.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
}

/// The current port: set inside port callbacks, thread ports and `peval`;
/// `None` elsewhere.
///
/// ```
/// let node = aemp::Node::new("ctx-doc").unwrap();
/// assert!(aemp::self_port().is_none());
/// let p = node.port();
/// let inside = node.peval(&p, || aemp::self_port()).unwrap();
/// assert_eq!(inside, Some(p));
/// ```
pub fn self_port() -> Option<PortId> {
    CTX.try_with(|c| {
        let c = c.borrow();
        c.port
            .clone()
            .or_else(|| c.processing.as_ref().map(|p| p.id.clone()))
    })
    .ok()
    .flatten()
}

/// The node that sent the message whose callback is running (the
/// original's `$SRCNODE`); `None` outside callbacks or for local messages.
///
/// ```
/// use aemp::{msg, Config, Node};
/// use std::time::Duration;
/// let a = Node::with_config(Config::new("doc-src-a/").bind("127.0.0.1:0").secret("s")).unwrap();
/// let b = Node::with_config(Config::new("doc-src-b/").secret("s")).unwrap();
/// let (tx, rx) = crossbeam_channel::unbounded();
/// let inbox = a.port_fn(move |_| tx.send(aemp::src_node()).unwrap());
/// a.snd(&inbox, msg!["local"]);
/// b.add_address(a.id(), &a.listen_addrs()[0].to_string()).unwrap();
/// b.snd(&inbox, msg!["remote"]);
/// let t = Duration::from_secs(10);
/// assert_eq!(rx.recv_timeout(t).unwrap(), None); // a local send
/// assert_eq!(rx.recv_timeout(t).unwrap().as_ref(), Some(b.id()));
/// ```
pub fn src_node() -> Option<NodeId> {
    SRC.try_with(|s| s.borrow().clone()).ok().flatten()
}

/// Sets [`src_node`] until the returned value is dropped.
pub(crate) fn enter_src(src: NodeId) -> SrcGuard {
    SrcGuard(SRC.with(|s| s.borrow_mut().replace(src)))
}

/// Restores the previous [`src_node`].
pub(crate) struct SrcGuard(Option<NodeId>);

impl Drop for SrcGuard {
    fn drop(&mut self) {
        let prev = self.0.take();
        SRC.with(|s| *s.borrow_mut() = prev);
    }
}

/// Until the returned guard drops, ports this thread schedules wait (in
/// order) instead of going to their dispatcher at once. The reactor
/// routes each chunk of packets under one guard, so that requests read
/// together take effect together, as in the original's event loop: a
/// spawn's init runs only after a `mon1` that came with it was served.
pub(crate) fn defer_schedules() -> DeferGuard {
    DEFERRED.with(|d| {
        d.borrow_mut().get_or_insert_with(Vec::new);
    });
    DeferGuard(())
}

/// Schedules the deferred ports when dropped.
pub(crate) struct DeferGuard(());

impl Drop for DeferGuard {
    fn drop(&mut self) {
        let batch = DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default();
        for (node, cell) in batch {
            node.schedule(cell);
        }
    }
}

/// Defers scheduling `cell` if a [`defer_schedules`] guard is active;
/// otherwise hands it back.
pub(crate) fn try_defer(node: &Node, cell: Arc<PortCell>) -> Option<Arc<PortCell>> {
    let mut cell = Some(cell);
    let _ = DEFERRED.try_with(|d| {
        if let Some(list) = d.borrow_mut().as_mut() {
            list.push((node.clone(), cell.take().expect("deferred once")));
        }
    });
    cell
}

pub(crate) fn current_node() -> Option<Node> {
    CTX.try_with(|c| c.borrow().node.clone()).ok().flatten()
}

pub(crate) fn set_node(node: Option<Node>) -> Option<Node> {
    CTX.with(|c| std::mem::replace(&mut c.borrow_mut().node, node))
}

/// Enters a port's context; returns what to restore.
pub(crate) fn enter(node: &Node, port: PortId) -> Saved {
    CTX.with(|c| {
        let mut c = c.borrow_mut();
        Saved {
            node: c.node.replace(node.clone()),
            port: c.port.replace(port),
        }
    })
}

/// What [`enter`] replaced.
pub(crate) struct Saved {
    node: Option<Node>,
    port: Option<PortId>,
}

impl Drop for Saved {
    fn drop(&mut self) {
        let (node, port) = (self.node.take(), self.port.take());
        CTX.with(|c| {
            let mut c = c.borrow_mut();
            c.node = node;
            c.port = port;
        })
    }
}

/// The context side of a dispatcher's turn on one port (see
/// `dispatcher::Turn`): while it lives, the port is current
/// ([`self_port`]) and the handler changes and self-kill its callbacks ask
/// for wait here, taken by [`Processing::take_requests`] after each
/// callback. (Callbacks are user code with no turn to pass on, so `rcv`
/// and `kil` reach the turn through this thread's context.)
pub(crate) struct Processing {
    /// Tied to the thread whose context it set.
    _thread: std::marker::PhantomData<*const ()>,
}

impl Processing {
    /// The dispatcher starts processing `cell`.
    pub(crate) fn begin(cell: &Arc<PortCell>) -> Processing {
        CTX.with(|c| c.borrow_mut().processing = Some(cell.clone()));
        Processing {
            _thread: std::marker::PhantomData,
        }
    }

    /// Takes the handler changes and self-kill requested by the last
    /// callback.
    pub(crate) fn take_requests(&mut self) -> (Vec<HandlerChange>, Option<Reason>) {
        CTX.with(|c| {
            let mut c = c.borrow_mut();
            if c.pending.is_empty() && c.kill_self.is_none() {
                return (Vec::new(), None);
            }
            (std::mem::take(&mut c.pending), c.kill_self.take())
        })
    }
}

impl Drop for Processing {
    fn drop(&mut self) {
        CTX.with(|c| {
            let mut c = c.borrow_mut();
            c.processing = None;
            c.pending.clear();
            c.kill_self = None;
        })
    }
}

/// True if this thread is processing `cell` right now.
pub(crate) fn is_processing(cell: &Arc<PortCell>) -> bool {
    CTX.try_with(|c| {
        c.borrow()
            .processing
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, cell))
    })
    .unwrap_or(false)
}

/// A callback of the port being processed changes its handlers: applied
/// when the callback returns.
pub(crate) fn push_pending(change: HandlerChange) {
    CTX.with(|c| c.borrow_mut().pending.push(change))
}

/// The first self-kill wins, like the first kill in the port's queue.
pub(crate) fn set_kill_self(reason: Reason) {
    CTX.with(|c| {
        let mut c = c.borrow_mut();
        if c.kill_self.is_none() {
            c.kill_self = Some(reason);
        }
    })
}

pub(crate) fn mark_dispatcher() {
    ON_DISPATCHER.with(|d| d.set(true));
}

pub(crate) fn on_dispatcher() -> bool {
    ON_DISPATCHER.try_with(Cell::get).unwrap_or(false)
}

/// Runs `f`, catching a panic and returning its text; the panic hook logs
/// panics caught here instead of printing them.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    install_panic_hook();
    CATCHING.with(|c| c.set(c.get() + 1));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get() - 1));
    r.map_err(|p| panic_text(&*p))
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    };
    text.trim_end_matches('\n').to_string()
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) > 0 {
                log::debug!("caught panic in port code: {info}");
            } else {
                previous(info);
            }
        }));
    });
}
