//! Per remote node: the link, packets queued while connecting, our
//! monitors of its ports (mon1/mon0 ref-counted), and the local monitors
//! we hold for it (its mon1 requests).
//!
//! The no-holes guarantee: when a connection goes, the link turns `Down`
//! and everything sent meanwhile is dropped, until a dispatcher task has
//! fired every monitor of that node; only then may a new connection come
//! up. So nothing sent after a lost message can arrive before the
//! monitors ran.

use super::outbox::{NoRoom, Outbox, Pushed};
use super::Net;
use super::NodeNet;
use crate::error::{Error, Result};
use crate::id::{NodeId, PortId};
use crate::message::{Message, Reason};
use crate::monitor::{next_monitor_id, MonGuard, MonitorAction};
use crate::stats::{PeerState, PeerStats};
use crate::transport::Framing;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why connections end when the local node shuts its network down (on
/// purpose: logged at INFO, not as a failure).
pub(super) const LOCAL_SHUTDOWN: &str = "the local node shut down its network";

pub(crate) struct Remote {
    /// Behind its own `Arc`: every message from this node carries it.
    pub(crate) id: Arc<NodeId>,
    pub(crate) st: Mutex<RemoteState>,
}

pub(crate) enum Link {
    /// No connection and none wanted.
    Idle,
    /// Connection attempts running; sends are queued.
    Connecting,
    Up(Arc<Outbox>),
    /// Lost; waiting for the monitors to fire. Sends are dropped.
    Down,
    /// The monitors are firing on this thread (the dispatcher): its sends
    /// (from monitor callbacks, e.g. a supervisor's respawn) are queued
    /// for a new connection; other threads' sends are still dropped.
    Firing(std::thread::ThreadId),
}

impl Link {
    /// Down for the calling thread: sends are dropped.
    fn is_down(&self) -> bool {
        match self {
            Link::Down => true,
            Link::Firing(t) => *t != std::thread::current().id(),
            _ => false,
        }
    }
}

pub(crate) struct RemoteState {
    pub(crate) link: Link,
    /// `(port name, message)` waiting for the connection.
    queue: Vec<(String, Message)>,
    /// About how many bytes `queue` will take on the wire (bounded by
    /// `unsent_limit`, as the outgoing buffer is).
    queued_bytes: usize,
    /// Our monitors of its ports by port name (`""`: the node port).
    monitors: HashMap<String, Vec<(u64, MonitorAction)>>,
    /// Local monitors held for its mon1 requests, by local port name.
    held: HashMap<String, MonGuard>,
}

impl Remote {
    pub(crate) fn is_up(&self) -> bool {
        matches!(self.st.lock().link, Link::Up(_))
    }
}

impl Net {
    /// The remote node `id`, created on first use.
    pub(crate) fn remote(&self, id: &str) -> Arc<Remote> {
        if let Some(r) = self.remotes.read().get(id) {
            return r.clone();
        }
        let mut map = self.remotes.write();
        map.entry(id.to_string())
            .or_insert_with(|| {
                Arc::new(Remote {
                    id: Arc::new(crate::NodeId::from_trusted(id)),
                    st: Mutex::new(RemoteState {
                        link: Link::Idle,
                        queue: Vec::new(),
                        queued_bytes: 0,
                        monitors: HashMap::new(),
                        held: HashMap::new(),
                    }),
                })
            })
            .clone()
    }

    /// Sends `msg` to port `name` on node `node`: encoded at once when
    /// connected, queued while connecting (starting a connection if
    /// needed), dropped while a lost connection's monitors fire.
    pub(crate) fn send(&self, node: &str, name: &str, msg: Message) {
        let remote = self.remote(node);
        let wake = {
            let mut st = remote.st.lock();
            self.send_locked(&remote, &mut st, name, msg)
        };
        self.kick(wake);
    }

    /// [`send`](Net::send), first waiting while the connection holds more
    /// than `unsent_high_water` unsent bytes (see `Node::snd_wait`).
    pub(crate) fn send_wait(&self, port: &PortId, msg: Message, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let remote = self.remote(port.node());
        loop {
            let mut st = remote.st.lock();
            let out = match &st.link {
                _ if st.link.is_down() => return Err(Error::LinkLost { port: port.clone() }),
                Link::Up(out) if out.unsent() > self.unsent_high_water => out.clone(),
                _ => {
                    let kick = self.send_locked(&remote, &mut st, port.name(), msg);
                    drop(st);
                    self.kick(kick);
                    return Ok(());
                }
            };
            drop(st);
            match out.wait_room(self.unsent_high_water, deadline) {
                Ok(()) => {}
                Err(NoRoom::Timeout { unsent }) => {
                    return Err(Error::Backlog {
                        port: port.clone(),
                        unsent,
                        after: timeout,
                    })
                }
                // Closed: the link is down now, or already replaced.
                Err(NoRoom::Closed) => {}
            }
        }
    }

    /// [`send`](Net::send) with the remote locked; returns what the
    /// reactor must do, once the lock is released.
    fn send_locked(
        &self,
        remote: &Arc<Remote>,
        st: &mut RemoteState,
        name: &str,
        msg: Message,
    ) -> Option<Kick> {
        if self.trace {
            log::info!(target: "aemp::trace", "SND {} {}", remote.id, trace_text(name, &msg));
        }
        match &st.link {
            _ if st.link.is_down() => {
                log::debug!("dropping message to {}#{name}: connection lost", remote.id);
                None
            }
            Link::Up(out) => Kick::after(out, out.push_message(name, &msg)),
            Link::Connecting => self.enqueue(remote, st, name, msg),
            // A monitor callback's sends on the dispatcher: a finite burst.
            Link::Firing(_) => {
                st.queue.push((name.to_string(), msg));
                None
            }
            Link::Idle => {
                st.link = Link::Connecting;
                self.reactor.dial(remote.clone());
                self.enqueue(remote, st, name, msg)
            }
            Link::Down => None,
        }
    }

    /// Queues a packet while connecting; past `unsent_limit` the attempt
    /// is failed instead, like an outgoing buffer over its limit.
    fn enqueue(
        &self,
        remote: &Arc<Remote>,
        st: &mut RemoteState,
        name: &str,
        msg: Message,
    ) -> Option<Kick> {
        let size = wire_size(name, &msg);
        if st.queued_bytes + size > self.unsent_limit {
            return Some(Kick::QueueOver(remote.clone(), st.queued_bytes + size));
        }
        st.queued_bytes += size;
        st.queue.push((name.to_string(), msg));
        None
    }

    /// Starts connecting to `node` unless a connection exists or is being
    /// made (the global mesh).
    pub(crate) fn ensure_connection(&self, node: &str) {
        let remote = self.remote(node);
        let mut st = remote.st.lock();
        if matches!(st.link, Link::Idle) {
            st.link = Link::Connecting;
            self.reactor.dial(remote.clone());
        }
    }

    /// Monitors the remote port `port`.
    pub(crate) fn monitor(self: &Arc<Self>, port: &PortId, action: MonitorAction) -> MonGuard {
        let remote = self.remote(port.node());
        let name = port.name().to_string();
        let mut st = remote.st.lock();
        if st.link.is_down() {
            drop(st);
            let reason = Reason::transport_error(port.node(), "connection lost");
            return match self.node() {
                Some(node) => node.fire_later(action, reason),
                None => MonGuard::on_drop(|| {}),
            };
        }
        let id = next_monitor_id();
        let list = st.monitors.entry(name.clone()).or_default();
        let first = list.is_empty();
        list.push((id, action));
        let mut wake = None;
        if first && !name.is_empty() {
            wake = self.send_locked(&remote, &mut st, "", crate::msg!["mon1", &name]);
        } else if matches!(st.link, Link::Idle) {
            // Monitoring a node (port) starts a connection attempt.
            st.link = Link::Connecting;
            self.reactor.dial(remote.clone());
        }
        drop(st);
        self.kick(wake);
        let net = Arc::downgrade(self);
        MonGuard::on_drop(move || {
            if let Some(net) = net.upgrade() {
                net.unmonitor(&remote, &name, id);
            }
        })
    }

    fn unmonitor(&self, remote: &Arc<Remote>, name: &str, id: u64) {
        let (removed, wake) = {
            let mut st = remote.st.lock();
            let Some(list) = st.monitors.get_mut(name) else {
                return;
            };
            let removed = list
                .iter()
                .position(|(i, _)| *i == id)
                .map(|i| list.swap_remove(i));
            let mut wake = None;
            if list.is_empty() {
                st.monitors.remove(name);
                if !name.is_empty()
                    && removed.is_some()
                    && matches!(st.link, Link::Up(_) | Link::Connecting | Link::Firing(_))
                {
                    wake = self.send_locked(remote, &mut st, "", crate::msg!["mon0", name]);
                }
            }
            (removed, wake)
        };
        drop(removed);
        self.kick(wake);
    }

    /// The peer reports that its port `name` died (`kil0`).
    pub(crate) fn remote_died(&self, remote: &Remote, name: &str, reason: Reason) {
        let actions = remote.st.lock().monitors.remove(name).unwrap_or_default();
        if actions.is_empty() {
            return;
        }
        if let Some(node) = self.node() {
            let n = node.clone();
            node.task(move || {
                for (_, action) in actions {
                    n.fire(action, &reason);
                }
            });
        }
    }

    /// The peer asks to monitor our port `name` (`mon1`): a local monitor
    /// that reports the death back with `kil0`.
    pub(crate) fn hold_monitor(self: &Arc<Self>, remote: &Arc<Remote>, name: &str) {
        let Some(node) = self.node() else { return };
        let port = PortId::from_parts(node.id().as_str(), name);
        let (net, peer, pname) = (Arc::downgrade(self), remote.clone(), name.to_string());
        // Locked until the guard is stored: the callback (a dispatcher task
        // for a nonexistent port) looks for it under this lock.
        let mut st = remote.st.lock();
        let guard = node.mon(&port, move |reason| {
            let Some(net) = net.upgrade() else { return };
            let mut req = crate::msg!["kil0", &pname];
            req.extend(reason.0);
            let wake = {
                let mut st = peer.st.lock();
                // Only on the connection that asked; after a loss the
                // peer's monitors fired already.
                if st.held.remove(&pname).is_none() {
                    return;
                }
                match st.link {
                    Link::Up(_) => net.send_locked(&peer, &mut st, "", req),
                    _ => None,
                }
            };
            net.kick(wake);
        });
        let old = st.held.insert(name.to_string(), guard);
        drop(st);
        drop(old);
    }

    /// The peer cancels its monitor of our port `name` (`mon0`).
    pub(crate) fn release_monitor(&self, remote: &Remote, name: &str) {
        let guard = remote.st.lock().held.remove(name);
        drop(guard);
    }

    /// A connection to `remote` completed its handshake. Returns its
    /// outgoing side, with the queued packets encoded, or `None` if the
    /// connection must be closed (already connected, or a loss is still
    /// being processed).
    pub(crate) fn established(
        &self,
        remote: &Arc<Remote>,
        token: mio::Token,
        framing: Framing,
        writer: Option<std::net::TcpStream>,
    ) -> Option<Arc<Outbox>> {
        let mut st = remote.st.lock();
        if matches!(st.link, Link::Up(_) | Link::Down | Link::Firing(_)) {
            return None;
        }
        let out = Arc::new(Outbox::new(
            token,
            framing,
            writer,
            self.unsent_limit,
            self.sends.clone(),
        ));
        st.queued_bytes = 0;
        for (name, msg) in std::mem::take(&mut st.queue) {
            // Not yet writable (the reactor holds the handshake's end): at
            // most over the limit, which the reactor's first flush reports.
            let _ = out.push(&name, &msg);
        }
        st.link = Link::Up(out.clone());
        if let Some(node) = self.node() {
            self.nodes
                .notify(&node, NodeId::clone(&remote.id), true, Reason::normal());
        }
        log::info!("{}: connected to {}", self.id, remote.id);
        Some(out)
    }

    /// The connection `token` to `remote` was lost (`was_up`), or the
    /// attempts to connect failed: fire every monitor with
    /// `transport_error`, drop the queue and what we held for the peer.
    pub(crate) fn fail(&self, remote: &Arc<Remote>, token: Option<mio::Token>, text: &str) {
        let mut st = remote.st.lock();
        let was_up = match &st.link {
            Link::Up(out) if Some(out.token) == token => true,
            Link::Connecting if token.is_none() => false,
            _ => return,
        };
        st.link = Link::Down;
        let monitors = std::mem::take(&mut st.monitors);
        let held = std::mem::take(&mut st.held);
        let queue = std::mem::take(&mut st.queue);
        st.queued_bytes = 0;
        let Some(node) = self.node() else { return };
        let reason = Reason::transport_error(remote.id.as_str(), text);
        if text == "connection closed by peer" || text == LOCAL_SHUTDOWN {
            log::info!("{}: connection to {} closed: {text}", self.id, remote.id);
        } else {
            log::warn!("{}: connection to {} failed: {text}", self.id, remote.id);
        }
        let (n, r) = (node.clone(), remote.clone());
        let net = self.node_net();
        // Runs on the dispatcher, after the callbacks of packets already
        // routed; the link opens again only after every monitor fired.
        // The node-down event is queued before the link may come up again
        // (so up and down alternate), and runs when sends work again.
        node.task(move || {
            drop(held);
            drop(queue);
            if let (true, Some(net)) = (was_up, n.net()) {
                net.peer_down(r.id.as_str());
            }
            r.st.lock().link = Link::Firing(std::thread::current().id());
            for (_, list) in monitors {
                for (_, action) in list {
                    n.fire(action, &reason);
                }
            }
            if let (true, Some(net)) = (was_up, net) {
                net.nodes.notify(&n, NodeId::clone(&r.id), false, reason);
            }
            let mut st = r.st.lock();
            if matches!(st.link, Link::Firing(_)) {
                if st.queue.is_empty() && st.monitors.is_empty() {
                    st.link = Link::Idle;
                } else if let Some(net) = n.net() {
                    // The callbacks sent or monitored: connect again.
                    st.link = Link::Connecting;
                    net.reactor.dial(r.clone());
                }
            }
        });
    }

    /// This node's network, for tasks that outlive the call.
    fn node_net(&self) -> Option<Arc<Net>> {
        self.node().and_then(|n| n.net().cloned())
    }

    /// The link to `remote` as a new connection's greeting weighs it (see
    /// `duplicate.rs`).
    pub(super) fn greeting_link(&self, remote: &Remote) -> super::duplicate::Link {
        use super::duplicate::Link as Greeting;
        match &remote.st.lock().link {
            Link::Up(out) => Greeting::Up(out.token),
            Link::Down | Link::Firing(_) => Greeting::Settling,
            Link::Idle | Link::Connecting => Greeting::Free,
        }
    }
}

/// What the reactor must do after a packet went into an outbox.
pub(crate) enum Kick {
    /// Write the connection's buffer.
    Flush(mio::Token),
    /// The connection's unsent bytes passed the limit: fail it.
    Over(mio::Token, usize),
    /// The packets queued while connecting passed the limit: fail the
    /// attempt (its monitors fire, the queue goes).
    QueueOver(Arc<Remote>, usize),
}

impl Kick {
    fn after(out: &Outbox, pushed: Pushed) -> Option<Kick> {
        match pushed {
            Pushed::Done => None,
            Pushed::Wake => Some(Kick::Flush(out.token)),
            Pushed::Over { unsent } => Some(Kick::Over(out.token, unsent)),
            Pushed::Closed => {
                log::debug!("dropping a packet: its connection is closing");
                None
            }
        }
    }
}

impl Net {
    /// Tells the reactor what a send asked for (with no lock held).
    pub(crate) fn kick(&self, kick: Option<Kick>) {
        match kick {
            None => {}
            Some(Kick::Flush(token)) => self.reactor.flush(token),
            Some(Kick::Over(token, unsent)) => self.reactor.over_limit(token, unsent),
            Some(Kick::QueueOver(remote, queued)) => {
                let why = format!(
                    "{queued} bytes queued while connecting, over the unsent_limit of {} bytes",
                    self.unsent_limit
                );
                self.fail(&remote, None, &why);
            }
        }
    }
}

/// About how many bytes `msg` to port `name` takes on the wire (JSON), for
/// bounding the queue of a link that is still connecting.
fn wire_size(name: &str, msg: &Message) -> usize {
    fn value(v: &serde_json::Value) -> usize {
        use serde_json::Value;
        match v {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 20,
            Value::String(s) => s.len() + 2,
            Value::Array(a) => 2 + a.iter().map(|v| value(v) + 1).sum::<usize>(),
            Value::Object(o) => 2 + o.iter().map(|(k, v)| k.len() + 4 + value(v)).sum::<usize>(),
        }
    }
    name.len() + 4 + msg.iter().map(|v| value(v) + 1).sum::<usize>()
}

impl Net {
    /// Every remote's link, for `Node::stats`.
    pub(crate) fn peers(&self) -> Vec<PeerStats> {
        let remotes: Vec<Arc<Remote>> = self.remotes.read().values().cloned().collect();
        remotes
            .iter()
            .map(|r| {
                let st = r.st.lock();
                let state = match &st.link {
                    Link::Idle => PeerState::Idle,
                    Link::Connecting => PeerState::Connecting,
                    Link::Up(_) => PeerState::Up,
                    Link::Down | Link::Firing(_) => PeerState::Down,
                };
                let mut p = PeerStats {
                    node: r.id.to_string(),
                    state,
                    queued: st.queue.len(),
                    unsent: 0,
                    packets_sent: 0,
                    bytes_sent: 0,
                    packets_received: 0,
                    bytes_received: 0,
                    last_heard: None,
                    connected_for: None,
                };
                if let Link::Up(out) = &st.link {
                    let c = out.counts();
                    p.unsent = c.unsent;
                    p.packets_sent = c.packets_sent;
                    p.bytes_sent = c.bytes_sent;
                    p.packets_received = c.packets_received;
                    p.bytes_received = c.bytes_received;
                    p.last_heard = Some(c.last_heard);
                    p.connected_for = Some(c.connected_for);
                }
                p
            })
            .collect()
    }
}

/// Where a remote's link stands, for the reactor's connection attempts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum DialState {
    /// Sends are queued for a connection.
    Connecting,
    /// Nothing waits for a connection (attempts may go on).
    Idle,
    /// A lost connection's monitors are firing: no new one yet.
    Settling,
    Up,
}

impl Remote {
    pub(crate) fn dial_state(&self) -> DialState {
        match self.st.lock().link {
            Link::Connecting => DialState::Connecting,
            Link::Idle => DialState::Idle,
            Link::Down | Link::Firing(_) => DialState::Settling,
            Link::Up(_) => DialState::Up,
        }
    }
}

/// `["name", msg...]` as JSON text for trace lines.
pub(crate) fn trace_text(name: &str, msg: &[serde_json::Value]) -> String {
    let mut v = Vec::with_capacity(msg.len() + 1);
    v.push(serde_json::Value::from(name));
    v.extend(msg.iter().cloned());
    serde_json::Value::Array(v).to_string()
}
