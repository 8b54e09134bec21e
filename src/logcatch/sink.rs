//! The side being caught: the forwarding logger, the sinks attached by
//! catchers, their bounded queues and the threads that drain them.

use super::{level_number, now, parse_level, CONNECT_FN};
use crate::id::PortId;
use crate::message::Message;
use crate::node::{Node, NodeInner};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use log::{LevelFilter, Log, Metadata, Record};
use once_cell::sync::OnceCell;
use parking_lot::{Mutex, RwLock};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How many records each sink's queue holds; past it records are dropped
/// (and counted) instead of blocking the logging thread.
pub const QUEUE: usize = 4096;

/// How long a sink thread waits in one go, for a record or for room on
/// the connection, before it looks whether it should stop.
const POLL: Duration = Duration::from_millis(200);

/// One record on its way: `[time, context, level, text]`.
struct Rec {
    time: f64,
    context: String,
    level: u8,
    text: String,
}

impl Rec {
    fn message(&self) -> Message {
        crate::msg![
            self.time,
            self.context.as_str(),
            self.level,
            self.text.as_str()
        ]
    }
}

/// What a sink and its thread share.
struct Shared {
    port: PortId,
    level: u8,
    /// Dropped and not yet reported to the catcher.
    unreported: AtomicU64,
    dropped: AtomicU64,
    forwarded: AtomicU64,
    /// Cleared when the sink is detached.
    attached: AtomicBool,
    /// Whether records go through it (see [`SinkStats::active`]).
    active: AtomicBool,
}

/// An attached sink: the queue's sending end (the thread has the other).
struct Sink {
    tx: Sender<Arc<Rec>>,
    shared: Arc<Shared>,
}

/// The attached sinks; replaced as a whole (copy on write) on attach and
/// detach, so the logging thread only clones an `Arc` under the lock.
static SINKS: RwLock<Vec<Arc<Sink>>> = RwLock::new(Vec::new());
/// The least severe level any sink wants (0: no sink).
static WANTED: AtomicU8 = AtomicU8::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// The level given to [`install`], once installed.
static INSTALLED: OnceCell<LevelFilter> = OnceCell::new();
/// Whether [`forward`] was ever called (the logger forwards).
static HOOKED: AtomicBool = AtomicBool::new(false);
/// Serialises attach and detach (and the maximum level they set).
static CHANGE: Mutex<()> = Mutex::new(());

thread_local! {
    /// Set on a sink thread and while a catcher logs what it received:
    /// records logged then are not forwarded.
    static NO_FORWARD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with forwarding off on this thread.
pub(crate) fn without_forwarding<R>(f: impl FnOnce() -> R) -> R {
    let was = NO_FORWARD.with(|g| g.replace(true));
    let r = f();
    NO_FORWARD.with(|g| g.set(was));
    r
}

/// One attached sink, from [`sinks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStats {
    /// The catcher's port the records go to.
    pub port: PortId,
    /// The least severe level it wants (AnyEvent::Log's number).
    pub level: u8,
    /// Records sent to it.
    pub forwarded: u64,
    /// Records dropped because its queue was full (the catcher was slow).
    pub dropped: u64,
    /// Records in its queue now.
    pub queued: usize,
    /// Whether records go through it. A catcher that catches several
    /// nodes of this process attaches a sink through each; one of them is
    /// active and the others stand by (one takes over when it detaches),
    /// so that each record reaches the catcher once.
    pub active: bool,
}

/// The sinks attached in this process now.
pub fn sinks() -> Vec<SinkStats> {
    SINKS
        .read()
        .iter()
        .map(|s| SinkStats {
            port: s.shared.port.clone(),
            level: s.shared.level,
            forwarded: s.shared.forwarded.load(Ordering::Relaxed),
            dropped: s.shared.dropped.load(Ordering::Relaxed),
            queued: s.tx.len(),
            active: s.shared.active.load(Ordering::Relaxed),
        })
        .collect()
}

/// Records dropped in this process so far because a sink's queue was full
/// (over every sink, detached ones included).
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Whether a record may be forwarded at all (see the module notes).
fn forwardable(record: &Record) -> bool {
    let target = record.target();
    let ours = target == "aemp" || target.starts_with("aemp::");
    if target == "aemp::trace" || (ours && record.level() >= log::Level::Debug) {
        return false;
    }
    !NO_FORWARD.with(Cell::get)
}

/// Passes `record` to the attached sinks (the hook for a logger of one's
/// own: call it from its `log` method). It never blocks: a sink whose
/// queue is full drops the record and counts it. Cheap when no catcher
/// wants the level (one atomic load).
///
/// ```
/// // A logger of one's own that also feeds aemp's catchers.
/// struct MyLogger;
/// impl log::Log for MyLogger {
///     fn enabled(&self, _: &log::Metadata) -> bool { true }
///     fn log(&self, record: &log::Record) {
///         eprintln!("{}: {}", record.level(), record.args());
///         aemp::logcatch::forward(record); // never blocks
///     }
///     fn flush(&self) {}
/// }
/// log::set_boxed_logger(Box::new(MyLogger)).unwrap();
/// log::set_max_level(log::LevelFilter::Info);
/// log::info!("no catcher attached: only printed");
/// assert!(aemp::logcatch::sinks().is_empty());
/// assert_eq!(aemp::logcatch::dropped(), 0);
/// ```
pub fn forward(record: &Record) {
    if !HOOKED.load(Ordering::Relaxed) {
        HOOKED.store(true, Ordering::Relaxed);
    }
    let level = level_number(record.level());
    if level > WANTED.load(Ordering::Relaxed) || !forwardable(record) {
        return;
    }
    // try_send never blocks, so the (recursive: never waiting for a
    // writer) read lock is held only for the loop.
    let sinks = SINKS.read_recursive();
    let mut rec: Option<Arc<Rec>> = None;
    let wanted =
        |s: &&Arc<Sink>| level <= s.shared.level && s.shared.active.load(Ordering::Relaxed);
    for s in sinks.iter().filter(wanted) {
        if s.tx.is_full() {
            // Dropped before it is even formatted: a stalled catcher costs
            // the logging thread next to nothing.
            s.shared.dropped.fetch_add(1, Ordering::Relaxed);
            s.shared.unreported.fetch_add(1, Ordering::Relaxed);
            DROPPED.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let r = rec.get_or_insert_with(|| {
            Arc::new(Rec {
                time: now(),
                context: record.target().to_string(),
                level,
                text: record.args().to_string(),
            })
        });
        if let Err(TrySendError::Full(_)) = s.tx.try_send(r.clone()) {
            s.shared.dropped.fetch_add(1, Ordering::Relaxed);
            s.shared.unreported.fetch_add(1, Ordering::Relaxed);
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The global logger that [`install`] sets: the inner logger, plus
/// [`forward`].
pub struct Forwarder {
    inner: Option<Box<dyn Log>>,
    level: LevelFilter,
}

impl Forwarder {
    /// A forwarder passing records up to `level` to `inner` (if any),
    /// and every record a catcher wants to [`forward`]. Use it when
    /// setting the logger yourself (e.g. `log::set_boxed_logger`); then
    /// `log::max_level` is yours to raise when catchers want more.
    ///
    /// ```
    /// use aemp::logcatch::Forwarder;
    /// let inner = env_logger::Builder::new().filter_level(log::LevelFilter::Info).build();
    /// log::set_boxed_logger(Box::new(Forwarder::new(Some(Box::new(inner)), log::LevelFilter::Info))).unwrap();
    /// log::set_max_level(log::LevelFilter::Info);
    /// log::info!("through env_logger, and to any catcher");
    /// ```
    pub fn new(inner: Option<Box<dyn Log>>, level: LevelFilter) -> Forwarder {
        Forwarder { inner, level }
    }

    fn inner_enabled(&self, m: &Metadata) -> Option<&dyn Log> {
        let inner = self.inner.as_deref()?;
        (m.level() <= self.level && inner.enabled(m)).then_some(inner)
    }
}

impl Log for Forwarder {
    fn enabled(&self, m: &Metadata) -> bool {
        self.inner_enabled(m).is_some() || level_number(m.level()) <= WANTED.load(Ordering::Relaxed)
    }

    fn log(&self, record: &Record) {
        if let Some(inner) = self.inner_enabled(record.metadata()) {
            inner.log(record);
        }
        forward(record);
    }

    fn flush(&self) {
        if let Some(inner) = &self.inner {
            inner.flush();
        }
    }
}

/// Sets the global logger to a [`Forwarder`] around `inner` (`None`: no
/// local output) with `level` as the maximum level for `inner`, and sets
/// `log::max_level` to `level` (raised while a catcher wants more). Fails
/// like `log::set_boxed_logger` when a logger is set already.
///
/// ```
/// let inner = env_logger::Builder::new().filter_level(log::LevelFilter::Info).build();
/// let _ = aemp::logcatch::install(Some(Box::new(inner)), log::LevelFilter::Info);
/// ```
pub fn install(inner: Option<Box<dyn Log>>, level: LevelFilter) -> Result<(), log::SetLoggerError> {
    log::set_boxed_logger(Box::new(Forwarder::new(inner, level)))?;
    let _ = INSTALLED.set(level);
    let _guard = CHANGE.lock();
    set_max_level(WANTED.load(Ordering::Relaxed));
    Ok(())
}

/// `log::max_level`: the installed level, or more while sinks want it.
fn set_max_level(wanted: u8) {
    let Some(&base) = INSTALLED.get() else { return };
    let want = match wanted {
        0 => LevelFilter::Off,
        n => super::log_level(n).to_level_filter(),
    };
    log::set_max_level(base.max(want));
}

/// Replaces the sink list with `f(list)` and updates what is wanted.
fn change(f: impl FnOnce(&mut Vec<Arc<Sink>>)) {
    let _guard = CHANGE.lock();
    let mut list = SINKS.read().clone();
    f(&mut list);
    let wanted = list.iter().map(|s| s.shared.level).max().unwrap_or(0);
    *SINKS.write() = list;
    WANTED.store(wanted, Ordering::Relaxed);
    set_max_level(wanted);
}

/// Detaches the sink of `shared` (its thread then ends).
fn detach(shared: &Arc<Shared>) {
    if shared.attached.swap(false, Ordering::AcqRel) {
        change(|list| {
            list.retain(|s| !Arc::ptr_eq(&s.shared, shared));
            // A sink of the same catcher standing by takes over.
            let same = |s: &&Arc<Sink>| s.shared.port.node() == shared.port.node();
            if !list
                .iter()
                .filter(same)
                .any(|s| s.shared.active.load(Ordering::Relaxed))
            {
                if let Some(next) = list.iter().find(same) {
                    // It reports what the other could not.
                    let n = shared.unreported.swap(0, Ordering::Relaxed);
                    next.shared.unreported.fetch_add(n, Ordering::Relaxed);
                    next.shared.active.store(true, Ordering::Relaxed);
                }
            }
        });
    }
}

/// [`CONNECT_FN`]: `[version, port, level]` attaches a sink to `port`.
pub(super) fn connect(node: &Node, args: &Message) {
    let port = args.get(1).map(PortId::try_from);
    let level = args.get(2).and_then(parse_level);
    let (Some(Ok(port)), Some(level)) = (port, level) else {
        log::warn!("{CONNECT_FN}: expected [version, port, level], got {args}");
        return;
    };
    if level == 0 {
        return;
    }
    if INSTALLED.get().is_none() && !HOOKED.load(Ordering::Relaxed) {
        log::warn!(
            "log catcher {port} connected, but this process's logger does not forward \
             records (see aemp::logcatch::install)"
        );
    }
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    let shared = Arc::new(Shared {
        port: port.clone(),
        level,
        unreported: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        forwarded: AtomicU64::new(0),
        attached: AtomicBool::new(true),
        active: AtomicBool::new(false),
    });
    change(|list| {
        // The first sink of a catcher in this process is the active one.
        let taken = list
            .iter()
            .any(|s| s.shared.port.node() == shared.port.node());
        shared.active.store(!taken, Ordering::Relaxed);
        list.push(Arc::new(Sink {
            tx,
            shared: shared.clone(),
        }))
    });
    // The catcher's port dies (it stopped, or its node went away): detach.
    let on_death = shared.clone();
    node.mon_internal(&port, move |_| detach(&on_death))
        .forget();
    let weak = Arc::downgrade(&node.inner);
    let thread = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("aemp-logcatch".into())
        .spawn(move || {
            without_forwarding(|| drain(weak, &thread, &rx));
            // However it ended (a standby sink of the catcher takes over).
            detach(&thread);
        });
    if let Err(e) = spawned {
        detach(&shared);
        log::error!("{CONNECT_FN}: cannot start a sink thread: {e}");
        return;
    }
    log::info!(target: "aemp::logcatch", "propagating log records at level {level} and above to {port}");
}

/// A sink's thread: sends the queued records, then the count of dropped
/// ones, until the sink is detached, the node is gone or the link lost
/// (then the thread detaches it).
fn drain(node: Weak<NodeInner>, shared: &Arc<Shared>, rx: &Receiver<Arc<Rec>>) {
    loop {
        if !shared.attached.load(Ordering::Acquire) {
            return;
        }
        let rec = match rx.recv_timeout(POLL) {
            Ok(rec) => Some(rec),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let Some(inner) = node.upgrade() else { return };
        let node = Node { inner };
        if node.is_shutting_down() {
            return;
        }
        if let Some(rec) = rec {
            if !send(&node, shared, rec.message()) {
                return;
            }
            shared.forwarded.fetch_add(1, Ordering::Relaxed);
        }
        let n = shared.unreported.swap(0, Ordering::Relaxed);
        if n > 0 {
            let text = format!(
                "{n} log records dropped: the catcher {} did not keep up (queue of {QUEUE})",
                shared.port
            );
            let report = crate::msg![now(), "aemp::logcatch", 5, text];
            if !send(&node, shared, report) {
                return;
            }
        }
    }
}

/// Sends one message, waiting (in steps of [`POLL`]) while the connection
/// is backed up; false when the sink is done (detached, or the link lost).
fn send(node: &Node, shared: &Arc<Shared>, msg: Message) -> bool {
    loop {
        if !shared.attached.load(Ordering::Acquire) {
            return false;
        }
        match node.snd_wait(&shared.port, msg.clone(), POLL) {
            Ok(()) => return true,
            Err(crate::Error::Backlog { .. }) => continue,
            Err(_) => return false,
        }
    }
}
