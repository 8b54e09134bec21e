//! Monitors: one-shot actions run when a port dies (or messages to it may
//! have been lost), and the guards that cancel them.

use crate::message::{Message, Reason};
use crate::port::PortCell;
use crate::PortId;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// What a monitor does when its port dies.
pub(crate) enum MonitorAction {
    /// Called with the reason (empty = normal kill).
    Callback(Box<dyn FnOnce(Reason) + Send>),
    /// Kill this port with the same reason, unless the reason is normal.
    Kill(PortId),
    /// Send this message with the reason appended.
    Send(PortId, Message),
    /// A callback of aemp's own (e.g. the entry removal of `db_reg`): it
    /// does not count as someone receiving the death, so a port that dies
    /// abnormally with only such monitors still gets its crash report.
    Internal(Box<dyn FnOnce(Reason) + Send>),
}

impl MonitorAction {
    /// Whether a user (or another node) receives the death through it.
    pub(crate) fn tells_user(&self) -> bool {
        !matches!(self, MonitorAction::Internal(_))
    }
}

pub(crate) struct MonitorEntry {
    pub(crate) id: u64,
    pub(crate) action: MonitorAction,
}

pub(crate) fn next_monitor_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Cancels a monitor when dropped.
///
/// Returned by every `mon` form. Keep it as long as the monitor should stay;
/// [`MonGuard::forget`] keeps the monitor for the port's whole life
/// (the original's `mon` in void context).
///
/// ```
/// let node = aemp::Node::new("guard-doc").unwrap();
/// let p = node.port();
/// let guard = node.mon(&p, |reason| println!("died: {reason}"));
/// drop(guard); // the callback will never run
/// ```
#[must_use = "dropping the guard cancels the monitor at once; call .forget() to keep it"]
pub struct MonGuard {
    inner: GuardInner,
}

enum GuardInner {
    /// Registered on a local port.
    Local {
        cell: Weak<PortCell>,
        id: u64,
    },
    /// Will fire from a queued task unless cancelled first.
    Pending(Arc<AtomicBool>),
    /// Held elsewhere (a remote port's monitor): dropping runs the cancel.
    Cancel(Box<dyn FnOnce() + Send>),
    Forgotten,
}

impl MonGuard {
    pub(crate) fn local(cell: &Arc<PortCell>, id: u64) -> MonGuard {
        MonGuard {
            inner: GuardInner::Local {
                cell: Arc::downgrade(cell),
                id,
            },
        }
    }

    pub(crate) fn pending(cancelled: Arc<AtomicBool>) -> MonGuard {
        MonGuard {
            inner: GuardInner::Pending(cancelled),
        }
    }

    pub(crate) fn on_drop(cancel: impl FnOnce() + Send + 'static) -> MonGuard {
        MonGuard {
            inner: GuardInner::Cancel(Box::new(cancel)),
        }
    }

    /// Keeps the monitor until it fires; the guard no longer cancels it.
    ///
    /// ```
    /// use aemp::{Node, Reason};
    /// use std::time::Duration;
    /// let node = Node::new("doc/forget").unwrap();
    /// let p = node.port_fn(|_| {});
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let tx2 = tx.clone();
    /// drop(node.mon(&p, move |_| tx.send("dropped guard").unwrap())); // cancelled
    /// node.mon(&p, move |_| tx2.send("forgotten guard").unwrap()).forget(); // kept
    /// node.kil(&p, Reason::normal()).unwrap();
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "forgotten guard");
    /// assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
    /// ```
    pub fn forget(mut self) {
        self.inner = GuardInner::Forgotten;
    }
}

impl Drop for MonGuard {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.inner, GuardInner::Forgotten) {
            GuardInner::Local { cell, id } => {
                if let Some(cell) = cell.upgrade() {
                    // Dropping the action (and what it owns) outside the lock.
                    drop(cell.remove_monitor(id));
                }
            }
            GuardInner::Pending(flag) => flag.store(true, Ordering::Release),
            GuardInner::Cancel(cancel) => cancel(),
            GuardInner::Forgotten => {}
        }
    }
}

impl std::fmt::Debug for MonGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MonGuard")
    }
}

use crate::context;
use crate::error::{Error, Result};
use crate::node::Node;

/// # Monitoring ports
impl Node {
    /// Calls `f` once with the kill reason when `port` dies (empty reason:
    /// a normal kill), or with `["no_such_port", ...]` if it does not exist
    /// now. The callback runs on the dispatcher; a panic in it is logged.
    ///
    /// The guarantee: after `mon`, every message sent to the port arrives,
    /// in order, or the monitor fires. Monitors are one-shot.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/mon").unwrap();
    /// let worker = node.port_fn(|m| if m.tag() == Some("crash") { panic!("bad input") });
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let guard = node.mon(&worker, move |reason| tx.send(reason).unwrap());
    /// node.snd(&worker, msg!["crash"]);
    /// let reason = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    /// assert_eq!(reason.kind(), Some("die")); // ["die", "bad input"]
    /// drop(guard); // after firing: nothing left to cancel
    ///
    /// // Unknown ports are reported, too.
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let gone = aemp::PortId::new(node.id(), "never-existed").unwrap();
    /// node.mon(&gone, move |r| tx.send(r).unwrap()).forget();
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().kind(), Some("no_such_port"));
    /// ```
    pub fn mon(&self, port: &PortId, f: impl FnOnce(Reason) + Send + 'static) -> MonGuard {
        self.monitor(port, MonitorAction::Callback(Box::new(f)))
    }

    /// [`mon`](Node::mon) for aemp's own bookkeeping: the death still
    /// counts as unmonitored for the crash report (see `Node::die`).
    pub(crate) fn mon_internal(
        &self,
        port: &PortId,
        f: impl FnOnce(Reason) + Send + 'static,
    ) -> MonGuard {
        self.monitor(port, MonitorAction::Internal(Box::new(f)))
    }

    /// Links `port` to `other`: when `port` dies with a non-empty reason,
    /// `other` is killed with the same reason. A normal kill does nothing.
    ///
    /// ```
    /// use aemp::{reason, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/mon_link").unwrap();
    /// let conn = node.port_fn(|_| {});
    /// let session = node.port_fn(|_| {});
    /// node.mon_link(&conn, &session).forget(); // session dies with conn
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// node.mon(&session, move |r| tx.send(r).unwrap()).forget();
    /// node.kil(&conn, reason!["closed", "peer hung up"]).unwrap();
    /// let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    /// assert_eq!(r, reason!["closed", "peer hung up"]); // the same reason
    /// ```
    pub fn mon_link(&self, port: &PortId, other: &PortId) -> MonGuard {
        self.monitor(port, MonitorAction::Kill(other.clone()))
    }

    /// Links `port` to the current port ([`self_port`](crate::self_port)).
    ///
    /// ```
    /// use aemp::{msg, reason, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/mon_self").unwrap();
    /// let helper = node.port_fn(|_| {});
    /// let (h, n) = (helper.clone(), node.clone());
    /// let (watching_tx, watching) = crossbeam_channel::bounded(1);
    /// let owner = node.port_fn(move |m| {
    ///     if m.tag() == Some("watch") {
    ///         n.mon_self(&h).unwrap().forget(); // inside the owner's callback
    ///         watching_tx.send(()).unwrap();
    ///     }
    /// });
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// node.mon(&owner, move |r| tx.send(r).unwrap()).forget();
    /// node.snd(&owner, msg!["watch"]);
    /// watching.recv_timeout(Duration::from_secs(5)).unwrap();
    /// node.kil(&helper, reason!["crashed"]).unwrap(); // takes the owner along
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), reason!["crashed"]);
    /// assert!(node.mon_self(&helper).is_err()); // outside port code: no current port
    /// ```
    pub fn mon_self(&self, port: &PortId) -> Result<MonGuard> {
        let me = context::self_port().ok_or(Error::NoCurrentPort { what: "mon_self" })?;
        Ok(self.mon_link(port, &me))
    }

    /// When `port` dies, sends `msg` with the kill reason appended to `to`.
    ///
    /// ```
    /// use aemp::{msg, Node, PortId, Reason};
    /// let node = Node::new("doc/mon_send").unwrap();
    /// let worker = node.port_fn(|_| {});
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let supervisor = node.port_fn(move |m| tx.send(m).unwrap());
    /// node.mon_send(&worker, &supervisor, msg!["down", &worker]).forget();
    /// node.kil(&worker, Reason::die("out of work")).unwrap();
    /// // ["down", WORKER, "die", "out of work"]: decode the front, keep the reason.
    /// let (tag, port): (String, PortId) = rx.recv().unwrap().decode_prefix().map(|(t, rest)| {
    ///     assert_eq!(Reason::from(rest), Reason::die("out of work"));
    ///     t
    /// }).unwrap();
    /// assert_eq!((tag.as_str(), port), ("down", worker));
    /// ```
    pub fn mon_send(&self, port: &PortId, to: &PortId, msg: Message) -> MonGuard {
        self.monitor(port, MonitorAction::Send(to.clone(), msg))
    }

    /// Keeps `value` alive until `port` dies, then drops it. Dropping the
    /// guard drops it earlier.
    ///
    /// ```
    /// use aemp::{Node, Reason};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// let node = Node::new("doc/mon_guard").unwrap();
    /// let resource = Arc::new("an open file");
    /// let user = node.port_fn(|_| {});
    /// node.mon_guard(&user, resource.clone()).forget(); // lives as long as the port
    /// assert_eq!(Arc::strong_count(&resource), 2);
    /// node.kil(&user, Reason::normal()).unwrap();
    /// for _ in 0..500 {
    ///     if Arc::strong_count(&resource) == 1 { break }
    ///     std::thread::sleep(Duration::from_millis(10));
    /// }
    /// assert_eq!(Arc::strong_count(&resource), 1); // dropped when the port died
    /// ```
    pub fn mon_guard<T: Send + 'static>(&self, port: &PortId, value: T) -> MonGuard {
        self.mon(port, move |_| drop(value))
    }

    fn monitor(&self, port: &PortId, action: MonitorAction) -> MonGuard {
        if !self.port_is_local(port) {
            if let Some(net) = self.network() {
                return net.monitor(port, action);
            }
            let reason = Reason::transport_error(
                port.node(),
                "no connection: this node has no network connections yet",
            );
            return self.fire_later(action, reason);
        }
        let action = match self.lookup(port.name()) {
            Some(cell) => match cell.add_monitor(action) {
                Ok(id) => return MonGuard::local(&cell, id),
                Err(action) => action,
            },
            None => action,
        };
        self.fire_later(action, Reason::no_such_port(port.as_str()))
    }

    pub(crate) fn fire_later(&self, action: MonitorAction, reason: Reason) -> MonGuard {
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        let node = self.clone();
        self.task(move || {
            if !flag.load(Ordering::Acquire) {
                node.fire(action, &reason);
            }
        });
        MonGuard::pending(cancelled)
    }

    pub(crate) fn fire(&self, action: MonitorAction, reason: &Reason) {
        match action {
            MonitorAction::Callback(f) | MonitorAction::Internal(f) => {
                let reason = reason.clone();
                if let Err(text) = context::catch(|| f(reason)) {
                    log::error!("a monitor callback panicked: {text}");
                }
            }
            MonitorAction::Kill(port) => {
                if !reason.is_normal() {
                    if let Err(e) = self.kil(&port, reason.clone()) {
                        log::warn!("linked kill: {e}");
                    }
                }
            }
            MonitorAction::Send(port, mut msg) => {
                msg.extend(reason.iter().cloned());
                self.snd(&port, msg);
            }
        }
    }
}
