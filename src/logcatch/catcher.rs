//! The catching side: a port per caught node, kept connected while the
//! node is in the database's `'l` family.

use super::sink::without_forwarding;
use super::{log_level, now, CONNECT_FN};
use crate::db::protocol::LISTENERS;
use crate::db::DbMonGuard;
use crate::error::Result;
use crate::id::{NodeId, PortId};
use crate::message::{Message, Reason};
use crate::node::{Node, NodeInner};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How long a catcher waits before connecting again to a node whose port
/// was killed (the connection was lost) while the node is still in `'l`.
pub const RETRY: Duration = Duration::from_secs(1);

/// One log record a catcher received.
#[derive(Debug, Clone, PartialEq)]
pub struct Caught {
    /// The node it comes from.
    pub node: String,
    /// When it was logged there (float seconds since the epoch).
    pub time: f64,
    /// When it arrived here (float seconds since the epoch).
    pub received: f64,
    /// Its context (the `log` target on a Rust node, the AnyEvent::Log
    /// context title on a Perl node).
    pub context: String,
    /// Its level (AnyEvent::Log's number, see
    /// [`level_number`](super::level_number)).
    pub level: u8,
    /// Its text.
    pub text: String,
}

impl Caught {
    /// `[NODE]`, or `[NODE+0.250s]` when the record is older (or younger:
    /// clocks differ) than a millisecond, as the original shows it.
    ///
    /// ```
    /// use aemp::logcatch::Caught;
    /// let c = Caught { node: "db/1".into(), time: 100.0, received: 100.25,
    ///     context: "app".into(), level: 5, text: "disk almost full".into() };
    /// assert_eq!(c.origin(), "[db/1+0.250s]");
    /// assert_eq!(c.line(), "[db/1+0.250s] disk almost full");
    /// assert_eq!(Caught { received: 100.0, ..c }.origin(), "[db/1]");
    /// ```
    pub fn origin(&self) -> String {
        let delay = self.received - self.time;
        if delay.abs() < 1e-3 {
            format!("[{}]", self.node)
        } else {
            format!("[{}{delay:+.3}s]", self.node)
        }
    }

    /// `[NODE±delay] text`: the line the catcher logs.
    pub fn line(&self) -> String {
        format!("{} {}", self.origin(), self.text)
    }

    fn decode(node: &str, m: &Message) -> Option<Caught> {
        Some(Caught {
            node: node.to_string(),
            time: m.first()?.as_f64()?,
            received: now(),
            context: m.get(1)?.as_str().unwrap_or("").to_string(),
            level: super::parse_level(m.get(2)?)?,
            text: m.get(3)?.as_str()?.trim_end_matches('\n').to_string(),
        })
    }
}

type Output = Arc<dyn Fn(Caught) + Send + Sync>;

enum Slot {
    /// Connected (or connecting) through this port.
    Port(PortId),
    /// Lost; connecting again after [`RETRY`].
    Retrying,
}

struct State {
    level: u8,
    out: Output,
    slots: HashMap<String, Slot>,
    mon: Option<DbMonGuard>,
}

/// The catchers by node ID.
static CATCHERS: Lazy<Mutex<HashMap<String, Arc<Mutex<State>>>>> =
    Lazy::new(|| Mutex::new(HashMap::new()));

/// Starts catching the log records of every other node of the network at
/// `level` (AnyEvent::Log's number: 9 everything, 5 warnings and worse)
/// and logs each here with [`Caught::line`] (`[NODE±delay] text`) at its
/// level (at least 2: a remote fatal is not fatal here), its context as
/// the target, and not forwarded to this process's own catchers. `None`
/// stops. Calling it again replaces the previous catch. Fails without a
/// network.
///
/// ```
/// use aemp::{logcatch, Config, Node};
/// let node = Node::with_config(Config::new("catcher").bind("127.0.0.1:0").secret("s")).unwrap();
/// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap(); // a network of its own
/// logcatch::catch(&node, Some(9)).unwrap(); // everything
/// logcatch::catch(&node, None).unwrap(); // stops
/// assert!(logcatch::catch(&Node::new("no-network").unwrap(), Some(9)).is_err());
/// ```
pub fn catch(node: &Node, level: Option<u8>) -> Result<()> {
    catch_with(node, level, log_locally)
}

/// [`catch`] with `out` called (on the node's dispatcher: it must not
/// block) for each record instead of logging it.
///
/// ```
/// use aemp::{logcatch, Config, Node};
/// use std::time::Duration;
/// logcatch::install(None, log::LevelFilter::Warn).unwrap(); // the process's logger
/// let cfg = |id: &str| Config::new(id).bind("127.0.0.1:0").secret("s");
/// let catcher = Node::with_config(cfg("catcher")).unwrap();
/// let at = catcher.listen_addrs()[0].to_string();
/// catcher.add_seed(&at).unwrap();
/// let (tx, rx) = crossbeam_channel::unbounded();
/// logcatch::catch_with(&catcher, Some(5), move |c| { let _ = tx.send(c.line()); }).unwrap();
///
/// let _worker = Node::with_config(cfg("worker").seeds([at])).unwrap();
/// for _ in 0..1000 {
///     if !logcatch::sinks().is_empty() { break } // the catcher has attached
///     std::thread::sleep(Duration::from_millis(10));
/// }
/// log::warn!("low on disk");
/// let line = loop {
///     let l = rx.recv_timeout(Duration::from_secs(10)).unwrap();
///     if l.ends_with("low on disk") { break l }
/// };
/// assert!(line.starts_with("[worker")); // "[worker] ..." or "[worker+0.002s] ..."
/// ```
pub fn catch_with(
    node: &Node,
    level: Option<u8>,
    out: impl Fn(Caught) + Send + Sync + 'static,
) -> Result<()> {
    let key = node.id().to_string();
    let old = CATCHERS.lock().remove(&key);
    if let Some(old) = old {
        stop(node, &old);
    }
    let Some(level) = level.filter(|&l| l > 0) else {
        return Ok(());
    };
    let st = Arc::new(Mutex::new(State {
        level: level.min(9),
        out: Arc::new(out),
        slots: HashMap::new(),
        mon: None,
    }));
    CATCHERS.lock().insert(key.clone(), st.clone());
    let (weak_node, weak_st) = (Arc::downgrade(&node.inner), Arc::downgrade(&st));
    let mon = node.db_mon(LISTENERS, move |ev| {
        let (Some(node), Some(st)) = (upgrade(&weak_node), weak_st.upgrade()) else {
            return;
        };
        for gone in &ev.del {
            let slot = st.lock().slots.remove(gone);
            if let Some(Slot::Port(p)) = slot {
                let _ = node.kil(&p, Reason::normal());
            }
        }
        // A changed entry: the node may have come back (same ID).
        for other in ev.add.iter().chain(&ev.chg) {
            mon_node(&node, &st, other);
        }
    });
    match mon {
        Ok(guard) => {
            st.lock().mon = Some(guard);
            Ok(())
        }
        Err(e) => {
            CATCHERS.lock().remove(&key);
            Err(e)
        }
    }
}

fn upgrade(weak: &Weak<NodeInner>) -> Option<Node> {
    weak.upgrade().map(|inner| Node { inner })
}

/// Stops a catch: no more monitor, every port killed (normally).
fn stop(node: &Node, st: &Arc<Mutex<State>>) {
    let (slots, mon) = {
        let mut s = st.lock();
        (std::mem::take(&mut s.slots), s.mon.take())
    };
    drop(mon);
    for slot in slots.into_values() {
        if let Slot::Port(p) = slot {
            let _ = node.kil(&p, Reason::normal());
        }
    }
}

/// Connects to `other` unless connected already (or it is this node).
fn mon_node(node: &Node, st: &Arc<Mutex<State>>, other: &str) {
    if other == node.id().as_str() {
        return;
    }
    let Ok(other_id) = other.parse::<NodeId>() else {
        return;
    };
    let (lport, level) = {
        let mut s = st.lock();
        if matches!(s.slots.get(other), Some(Slot::Port(_))) {
            return;
        }
        let out = s.out.clone();
        let from = other.to_string();
        let lport = node.port_fn(move |m| match Caught::decode(&from, &m) {
            Some(c) => out(c),
            None => log::debug!("log catcher: a malformed record from {from}: {m}"),
        });
        s.slots.insert(other.to_string(), Slot::Port(lport.clone()));
        (lport, s.level)
    };
    // The port dies (normally when stopped or the node left `'l`, with
    // the transport error when the node went down): retry while wanted.
    let (weak_node, weak_st) = (Arc::downgrade(&node.inner), Arc::downgrade(st));
    let (name, port) = (other.to_string(), lport.clone());
    node.mon(&lport, move |reason| {
        let (Some(node), Some(st)) = (upgrade(&weak_node), weak_st.upgrade()) else {
            return;
        };
        {
            let mut s = st.lock();
            match s.slots.get(&name) {
                Some(Slot::Port(p)) if *p == port => {
                    s.slots.insert(name.clone(), Slot::Retrying);
                }
                _ => return,
            }
        }
        if !reason.is_normal() {
            log::warn!("log catcher: lost node {name}: {reason}");
        }
        let later = Arc::downgrade(&st);
        let again = node.clone();
        node.after_fn(RETRY, move || {
            if let Some(st) = later.upgrade() {
                let retrying = matches!(st.lock().slots.get(&name), Some(Slot::Retrying));
                if retrying {
                    mon_node(&again, &st, &name);
                }
            }
        });
    })
    .forget();
    node.snd_to_func(&other_id, CONNECT_FN, crate::msg![0, &lport, level]);
    // The node goes down: the port dies with the reason. The link goes
    // with the port.
    let link = node.mon_link(&other_id.node_port(), &lport);
    node.mon_guard(&lport, link).forget();
}

/// [`catch`]'s output: log the record here, not forwarded further.
fn log_locally(c: Caught) {
    let level = log_level(c.level.max(2));
    if level > log::max_level() {
        return;
    }
    let line = c.line();
    without_forwarding(|| {
        log::logger().log(
            &log::Record::builder()
                .level(level)
                .target(&c.context)
                .args(format_args!("{line}"))
                .build(),
        )
    });
}
