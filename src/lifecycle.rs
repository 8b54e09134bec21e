//! A node's lifecycle: [`Node::shutdown`], [`Node::wait`] for its end,
//! and [`Node::wait_for_termination`], a daemon's main loop (the
//! replacement for `loop { park() }`).
//!
//! The order of a shutdown:
//! 1. the node is marked as shutting down: ports created from now on are
//!    dead at birth;
//! 2. every port but the node port is killed with the shutdown reason
//!    (messages queued before the kill are processed first, as with any
//!    kill); the dispatcher fires their monitors, local ones and those
//!    other nodes hold (their `kil0` packets are queued on the
//!    connections);
//! 3. once every port is gone, the network flushes every connection,
//!    closes it cleanly and waits (5 seconds at most) for the peer to
//!    close its end (packets still waiting for a connection to be made
//!    are dropped); its reactor thread ends and is joined;
//! 4. the dispatcher runs what the closing queued (monitors of remote
//!    ports fire with `transport_error`), stops, and is joined.
//!
//! Called on a dispatcher thread (in a callback), a shutdown cannot wait
//! for the dispatcher: it marks the node and queues the kills, and steps
//! 2–4 run on a thread of their own (`aemp-shutdown`); [`Node::wait`]
//! elsewhere tells when it ended.

use crate::context;
use crate::dispatcher::Job;
use crate::error::{Error, Result};
use crate::message::Reason;
use crate::node::Node;
use crate::port::PortCell;
use once_cell::sync::OnceCell;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

impl Reason {
    /// `["shutdown"]`: the reason [`Node::shutdown`] kills every port of
    /// the node with.
    ///
    /// ```
    /// assert_eq!(aemp::Reason::shutdown(), aemp::reason!["shutdown"]);
    /// ```
    pub fn shutdown() -> Reason {
        crate::reason!["shutdown"]
    }
}

/// Where a node stands in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Running,
    ShuttingDown,
    Done,
}

/// A node's lifecycle state, kept in the node.
pub(crate) struct Lifecycle {
    phase: Mutex<Phase>,
    /// Signalled when the shutdown completes.
    ended: Condvar,
    /// Shutdown has begun: read without the lock where ports are created.
    stopping: AtomicBool,
    /// Shutdown has completed: read without the lock where messages are
    /// sent.
    over: AtomicBool,
    /// The reason the ports were killed with.
    reason: OnceCell<Reason>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    /// Run when shutdown begins.
    on_stop: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

impl Lifecycle {
    pub(crate) fn new() -> Lifecycle {
        Lifecycle {
            phase: Mutex::new(Phase::Running),
            ended: Condvar::new(),
            stopping: AtomicBool::new(false),
            over: AtomicBool::new(false),
            reason: OnceCell::new(),
            dispatcher: Mutex::new(None),
            on_stop: Mutex::new(Vec::new()),
        }
    }

    /// Keeps the dispatcher thread's handle, to join it at the end.
    pub(crate) fn set_dispatcher(&self, handle: JoinHandle<()>) {
        *self.dispatcher.lock() = Some(handle);
    }

    /// Shutdown has begun (or completed).
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Shutdown has completed.
    pub(crate) fn is_over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }

    /// The shutdown's reason, once it has begun.
    pub(crate) fn reason(&self) -> Option<&Reason> {
        self.reason.get()
    }

    /// Marks the start of the shutdown; `false` if it had begun already.
    fn begin(&self, reason: Reason) -> bool {
        let hooks = {
            let mut phase = self.phase.lock();
            if *phase != Phase::Running {
                return false;
            }
            *phase = Phase::ShuttingDown;
            let _ = self.reason.set(reason);
            self.stopping.store(true, Ordering::SeqCst);
            std::mem::take(&mut *self.on_stop.lock())
        };
        for hook in hooks {
            hook();
        }
        true
    }

    /// Runs `hook` when shutdown begins (at once if it has).
    fn on_stop(&self, hook: impl FnOnce() + Send + 'static) {
        {
            let phase = self.phase.lock();
            if *phase == Phase::Running {
                self.on_stop.lock().push(Box::new(hook));
                return;
            }
        }
        hook();
    }

    fn end(&self) {
        let mut phase = self.phase.lock();
        *phase = Phase::Done;
        self.over.store(true, Ordering::Release);
        self.ended.notify_all();
    }

    fn wait(&self) {
        let mut phase = self.phase.lock();
        while *phase != Phase::Done {
            self.ended.wait(&mut phase);
        }
    }
}

/// # A node's lifecycle (`shutdown`, `wait`, SIGINT and SIGTERM)
impl Node {
    /// Shuts the node down with the reason [`Reason::shutdown`]
    /// (`["shutdown"]`); see [`shutdown_with`](Node::shutdown_with).
    ///
    /// ```
    /// use aemp::{Node, Reason};
    /// let node = Node::new("shutdown-doc").unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let p = node.port_fn(|_| {});
    /// let _guard = node.mon(&p, move |reason| tx.send(reason).unwrap());
    /// node.shutdown();
    /// assert!(node.is_shut_down());
    /// assert_eq!(rx.recv().unwrap(), Reason::shutdown());
    /// assert_eq!(node.port_count(), 1); // the node port stays
    /// ```
    pub fn shutdown(&self) {
        self.shutdown_with(Reason::shutdown())
    }

    /// Shuts the node down: kills every port of the node (but the node
    /// port) with `reason`, tells the monitors (other nodes' monitors of
    /// our ports get `reason` before the connection closes, never a
    /// `transport_error`), then flushes and closes every connection and
    /// ends and joins the node's threads (the reactor's, then the
    /// dispatcher's). Thread ports' threads are not joined: their
    /// mailbox's `get` returns [`Error::Killed`] and they end when their
    /// function returns.
    ///
    /// The default reason `["shutdown"]` is not normal, so ports linked to
    /// ours ([`mon_link`](Node::mon_link)) die too, as after a lost
    /// connection, but with a reason that tells why; pass
    /// [`Reason::normal`] to let them live.
    ///
    /// Returns when the shutdown has completed, except on a dispatcher
    /// thread (in a callback, of any node), where waiting could deadlock:
    /// there it returns once the kills are queued (the calling port's own
    /// kill takes effect when its callback returns), and the rest runs on
    /// a thread of its own; [`wait`](Node::wait) tells when it ended.
    ///
    /// What waits for a connection still being made when the shutdown
    /// begins is dropped; the clean close waits at most 5 seconds for the
    /// peers to read what was sent (a peer that does not read, or a node
    /// blocked in a callback, delays the shutdown).
    ///
    /// Idempotent: a later call (with any reason) changes nothing; it
    /// returns when the first has completed (at once on a dispatcher).
    ///
    /// After the shutdown, sends and kills are dropped, ports made with
    /// [`port_fn`](Node::port_fn), [`port_thread`](Node::port_thread) etc.
    /// are dead at birth (a thread port's function still runs, its `get`
    /// failing at once), and monitors, timers and `cal` callbacks never
    /// run: there is no dispatcher any more.
    ///
    /// ```
    /// use aemp::{msg, Node, Reason};
    /// let node = Node::new("shutdown-with-doc").unwrap();
    /// let p = node.port_fn(|_| {});
    /// node.shutdown_with(Reason::normal());
    /// node.shutdown(); // no effect
    /// assert!(node.is_shut_down());
    /// node.snd(&p, msg!["dropped"]);
    /// let q = node.port_fn(|_| {});
    /// assert!(node.rcv(&q, "tag", |_| {}).is_err()); // dead at birth
    /// ```
    pub fn shutdown_with(&self, reason: Reason) {
        let lc = &self.inner.lifecycle;
        let first = lc.begin(reason.clone());
        let on_dispatcher = context::on_dispatcher();
        if !first {
            if !on_dispatcher {
                lc.wait();
            }
            return;
        }
        log::info!("{}: shutting down ({reason})", self.id());
        self.kill_all(&reason);
        if on_dispatcher {
            let node = self.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("aemp-shutdown {}", self.id()))
                .spawn(move || node.finish_shutdown(&reason));
            if let Err(e) = spawned {
                log::error!("{}: cannot start the shutdown thread: {e}", self.id());
            }
        } else {
            self.finish_shutdown(&reason);
        }
    }

    /// True once a shutdown has begun ([`shutdown`](Node::shutdown)
    /// was called).
    ///
    /// ```
    /// let node = aemp::Node::new("stopping-doc").unwrap();
    /// assert!(!node.is_shutting_down());
    /// node.shutdown();
    /// assert!(node.is_shutting_down());
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        self.inner.lifecycle.is_stopping()
    }

    /// True once the shutdown has completed: every port is gone, the
    /// connections are closed, the node's threads have ended.
    ///
    /// ```
    /// let node = aemp::Node::new("shut-down-doc").unwrap();
    /// assert!(!node.is_shut_down());
    /// node.shutdown();
    /// assert!(node.is_shut_down());
    /// ```
    pub fn is_shut_down(&self) -> bool {
        self.inner.lifecycle.is_over()
    }

    /// Blocks until the node's shutdown has completed (begun by any
    /// thread, or by [`wait_for_termination`](Node::wait_for_termination)).
    /// Fails with [`Error::WouldBlockDispatcher`] on a dispatcher thread.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// let node = Node::new("wait-doc").unwrap();
    /// // A port that ends the node when told to.
    /// let p = node.port_fn(|_| aemp::node().shutdown());
    /// node.snd(&p, msg!["stop"]);
    /// node.wait().unwrap();
    /// assert!(node.is_shut_down());
    /// ```
    pub fn wait(&self) -> Result<()> {
        if context::on_dispatcher() {
            return Err(Error::WouldBlockDispatcher { what: "wait" });
        }
        self.inner.lifecycle.wait();
        Ok(())
    }

    /// A daemon's main loop: blocks until the process gets SIGINT or
    /// SIGTERM, then shuts the node down ([`shutdown`](Node::shutdown))
    /// and returns the signal's number once the shutdown has completed.
    /// If the node is shut down otherwise meanwhile, returns `None` when
    /// that shutdown has completed. A second SIGINT or SIGTERM during the
    /// shutdown ends the process at once with exit status 1.
    ///
    /// The signals are handled (with `signal-hook`) only during the call:
    /// a daemon that tells the world it is ready *before* it waits should
    /// use [`catch_termination`](Node::catch_termination) first, so that
    /// a signal in between is not lost. Fails with
    /// [`Error::WouldBlockDispatcher`] on a dispatcher thread, and with
    /// [`Error::Signal`] if the handlers cannot be installed.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// fn main() -> aemp::Result<()> {
    ///     let node = Node::with_config(Config::new("daemon").bind("127.0.0.1:0").secret("s"))?;
    ///     node.register("ping", |args| println!("ping {args}"));
    ///     // (Here a shutdown from elsewhere ends the wait instead of a signal.)
    ///     let n = node.clone();
    ///     node.after_fn(Duration::from_millis(50), move || n.shutdown());
    ///     // Instead of `loop { std::thread::park() }`:
    ///     match node.wait_for_termination()? {
    ///         Some(signal) => eprintln!("signal {signal}: shut down cleanly"),
    ///         None => eprintln!("shut down by the program"),
    ///     }
    ///     assert!(node.is_shut_down());
    ///     Ok(())
    /// }
    /// ```
    #[cfg(unix)]
    pub fn wait_for_termination(&self) -> Result<Option<i32>> {
        self.catch_termination()?.wait()
    }

    /// Starts handling SIGINT and SIGTERM for this node now; the returned
    /// [`Termination`]'s [`wait`](Termination::wait) then does what
    /// [`wait_for_termination`](Node::wait_for_termination) does. A signal
    /// that arrives between the two is not lost (dropping the
    /// `Termination` without waiting restores the default handling).
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// fn main() -> aemp::Result<()> {
    ///     let node = Node::with_config(Config::new("daemon").bind("127.0.0.1:0").secret("s"))?;
    ///     let termination = node.catch_termination()?;
    ///     println!("ready"); // a supervisor may send SIGTERM from here on
    ///     // (Here the program plays its own supervisor.)
    ///     signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
    ///     assert_eq!(termination.wait()?, Some(signal_hook::consts::SIGTERM));
    ///     assert!(node.is_shut_down());
    ///     Ok(())
    /// }
    /// ```
    #[cfg(unix)]
    pub fn catch_termination(&self) -> Result<Termination> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        if context::on_dispatcher() {
            return Err(Error::WouldBlockDispatcher {
                what: "catch_termination",
            });
        }
        let failed = |e: std::io::Error| Error::Signal {
            problem: e.to_string(),
        };
        let terminate_now = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for signal in [SIGINT, SIGTERM] {
            let id =
                signal_hook::flag::register_conditional_shutdown(signal, 1, terminate_now.clone())
                    .map_err(failed)?;
            ids.push(id);
        }
        let signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(failed)?;
        let handle = signals.handle();
        self.inner.lifecycle.on_stop(move || handle.close());
        Ok(Termination {
            node: self.clone(),
            terminate_now,
            ids,
            signals,
        })
    }

    /// Step 2 of the shutdown: kills every port but the node port.
    fn kill_all(&self, reason: &Reason) {
        let mut cells = Vec::new();
        self.inner.ports.for_each(|cell| {
            if !cell.id.is_node_port() {
                cells.push(cell.clone());
            }
        });
        for cell in cells {
            self.kill_cell(&cell, reason.clone());
        }
    }

    /// Steps 2 to 4 of the shutdown, off the dispatcher.
    fn finish_shutdown(&self, reason: &Reason) {
        // A busy port dies on the dispatcher, after its queued messages
        // (which may take several turns); an idle one is gone at once, but
        // its monitors fire in a task: wait a turn at a time until the
        // ports are gone and the turn ran what their deaths queued.
        loop {
            if !self.dispatcher_turn() {
                log::error!("{}: the dispatcher is gone; shutting down", self.id());
                break;
            }
            if self.port_count() <= 1 {
                break;
            }
            self.kill_all(reason);
        }
        // The monitors fired: what they sent is in the connections'
        // outboxes, to be flushed by the network's close.
        if let Some(net) = self.network() {
            net.close();
        }
        let _ = self.inner.jobs.send(Job::Stop);
        let dispatcher = self.inner.lifecycle.dispatcher.lock().take();
        if let Some(handle) = dispatcher {
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        log::info!("{}: shut down", self.id());
        self.inner.lifecycle.end();
    }

    /// Waits until the dispatcher has run everything queued before now;
    /// `false` if there is no dispatcher.
    fn dispatcher_turn(&self) -> bool {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.task(move || {
            let _ = tx.send(());
        });
        rx.recv().is_ok()
    }

    /// A port was created: during or after a shutdown it dies at once
    /// (quietly: no crash report).
    pub(crate) fn born(&self, cell: &Arc<PortCell>) {
        if !self.inner.lifecycle.is_stopping() || cell.id.is_node_port() {
            return;
        }
        let reason = self
            .inner
            .lifecycle
            .reason()
            .cloned()
            .unwrap_or_else(Reason::shutdown);
        self.die(cell, reason, true);
    }
}

/// SIGINT and SIGTERM caught for a node, from
/// [`Node::catch_termination`]; [`wait`](Termination::wait) for one.
///
/// ```
/// use aemp::Node;
/// let node = Node::new("doc/termination").unwrap();
/// let termination = node.catch_termination().unwrap();
/// node.shutdown(); // a shutdown from elsewhere also ends the wait
/// assert_eq!(termination.wait().unwrap(), None); // None: no signal
/// ```
#[cfg(unix)]
pub struct Termination {
    node: Node,
    terminate_now: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
    signals: signal_hook::iterator::Signals,
}

#[cfg(unix)]
impl Termination {
    /// Blocks until SIGINT or SIGTERM (or until the node is shut down
    /// otherwise), shuts the node down and returns the signal's number
    /// (`None` for another shutdown) once the shutdown has completed; see
    /// [`Node::wait_for_termination`].
    pub fn wait(mut self) -> Result<Option<i32>> {
        if context::on_dispatcher() {
            return Err(Error::WouldBlockDispatcher {
                what: "Termination::wait",
            });
        }
        let got = self.signals.forever().next();
        if let Some(signal) = got {
            self.terminate_now.store(true, Ordering::SeqCst);
            log::info!("{}: got signal {signal}", self.node.id());
            self.node.shutdown();
        }
        self.node.inner.lifecycle.wait();
        Ok(got)
    }
}

#[cfg(unix)]
impl Drop for Termination {
    fn drop(&mut self) {
        self.signals.handle().close();
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(unix)]
impl std::fmt::Debug for Termination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Termination")
            .field("node", self.node.id())
            .finish()
    }
}
