//! Port context and time: `peval`, `after`, and the two RPC forms, `cal`
//! (callback) and `call` (blocking).

use crate::context;
use crate::error::{Error, Result};
use crate::message::{Message, Reason};
use crate::monitor::MonGuard;
use crate::node::Node;
use crate::port::{DefaultHandler, Handlers};
use crate::timer::{self, Timer};
use crate::PortId;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

type ReplyCallback = Box<dyn FnOnce(Option<Message>) + Send>;

/// The state of one `cal`: whichever of reply, time-out or death comes
/// first takes the callback; the others find it gone.
struct Pending {
    callback: Option<ReplyCallback>,
    monitor: Option<MonGuard>,
    timer: Option<Timer>,
}

fn take_callback(pending: &Mutex<Pending>) -> Option<ReplyCallback> {
    let mut p = pending.lock();
    let cb = p.callback.take()?;
    let monitor = p.monitor.take();
    if let Some(t) = p.timer.take() {
        t.cancel();
    }
    drop(p);
    drop(monitor);
    Some(cb)
}

/// # Calls, timers and port context (`call`, `cal`, `after`, `peval`, `snd_wait`)
impl Node {
    /// Runs `f` now, on this thread, with `port` as the current port.
    /// A panic kills `port` with `die` and returns `None`.
    ///
    /// ```
    /// use aemp::Node;
    /// let node = Node::new("doc/peval").unwrap();
    /// let port = node.port_fn(|_| {});
    /// // Code outside any port (e.g. another library's callback) acting as `port`.
    /// let me = node.peval(&port, || aemp::self_port());
    /// assert_eq!(me, Some(Some(port.clone())));
    /// assert_eq!(node.peval(&port, || panic!("oops")), None::<()>); // port killed with "die"
    /// ```
    pub fn peval<R>(&self, port: &PortId, f: impl FnOnce() -> R) -> Option<R> {
        let _saved = context::enter(self, port.clone());
        match context::catch(f) {
            Ok(r) => Some(r),
            Err(text) => {
                let _ = self.kil(port, Reason::die(text));
                None
            }
        }
    }

    /// Sends `msg` to `port` after `delay`.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::{Duration, Instant};
    /// let node = Node::new("doc/after").unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let port = node.port_fn(move |m| tx.send(m).unwrap());
    /// let start = Instant::now();
    /// node.after(Duration::from_millis(20), &port, msg!["timeout"]);
    /// let cancelled = node.after(Duration::from_millis(10), &port, msg!["never"]);
    /// cancelled.cancel();
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), msg!["timeout"]);
    /// assert!(start.elapsed() >= Duration::from_millis(20));
    /// ```
    pub fn after(&self, delay: Duration, port: &PortId, msg: Message) -> Timer {
        let node = self.clone();
        let port = port.clone();
        timer::schedule(delay, move || node.snd(&port, msg))
    }

    /// Runs `f` on the dispatcher after `delay`, outside any port context
    /// (a panic is logged and kills nothing; wrap `f` with
    /// [`psub`](crate::psub) to run it in a port's context).
    ///
    /// ```
    /// use aemp::Node;
    /// use std::time::Duration;
    /// let node = Node::new("doc/after_fn").unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// node.after_fn(Duration::from_millis(10), move || tx.send("later").unwrap());
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "later");
    /// ```
    pub fn after_fn(&self, delay: Duration, f: impl FnOnce() + Send + 'static) -> Timer {
        let node = self.clone();
        timer::schedule(delay, move || node.task(f))
    }

    /// RPC with a callback: sends `msg` plus a fresh reply port to `port`.
    /// The callback runs exactly once: with `Some(reply)` on the first
    /// reply, or with `None` after `timeout`, or — without a time-out —
    /// when `port` dies. Returns the (local) reply port, which is killed
    /// when the callback runs. Unlike [`call`](Node::call) it never blocks,
    /// so callbacks may use it.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/cal").unwrap();
    /// // A server answers on the reply port that `cal` appends.
    /// let server = node.port_fn(|m| {
    ///     let reply = m.reply_port().unwrap();
    ///     aemp::snd(&reply, msg!["sum", m[1].as_i64().unwrap() + m[2].as_i64().unwrap()]);
    /// });
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// node.cal(&server, msg!["add", 2, 3], Some(Duration::from_secs(5)), move |reply| {
    ///     tx.send(reply).unwrap();
    /// });
    /// assert_eq!(rx.recv().unwrap(), Some(msg!["sum", 5]));
    /// ```
    pub fn cal(
        &self,
        port: &PortId,
        mut msg: Message,
        timeout: Option<Duration>,
        callback: impl FnOnce(Option<Message>) + Send + 'static,
    ) -> PortId {
        let pending = Arc::new(Mutex::new(Pending {
            callback: Some(Box::new(callback)),
            monitor: None,
            timer: None,
        }));
        let on_reply = {
            let (node, pending) = (self.clone(), pending.clone());
            move |reply: Message| {
                if let Some(cb) = take_callback(&pending) {
                    if let Some(me) = context::self_port() {
                        let _ = node.kil(&me, Reason::normal());
                    }
                    cb(Some(reply));
                }
            }
        };
        let reply_port = self.port_fn(on_reply);
        let give_up = {
            let (node, pending, reply_port) = (self.clone(), pending.clone(), reply_port.clone());
            move || {
                if let Some(cb) = take_callback(&pending) {
                    let _ = node.kil(&reply_port, Reason::normal());
                    cb(None);
                }
            }
        };
        match timeout {
            Some(t) => pending.lock().timer = Some(self.after_fn(t, give_up)),
            None => {
                // `cal`'s callback gets no reason: the death stays
                // unreported to the user, so it is not a user monitor.
                let guard = self.mon_internal(port, move |_| give_up());
                pending.lock().monitor = Some(guard);
            }
        }
        msg.push_str(reply_port.as_str());
        self.snd(port, msg);
        reply_port
    }

    /// Sends `msg` to `port` like [`snd`](Node::snd), but first waits
    /// while the connection to the port's node holds more than
    /// [`unsent_high_water`](crate::Config::unsent_high_water) unsent
    /// bytes: flow control for a producer that would rather wait than have
    /// a slow peer's buffer grow until the connection fails (see
    /// [`unsent_limit`](crate::Config::unsent_limit)).
    ///
    /// Returns once the message is handed on (written, buffered, or queued
    /// for a connection being made), [`Error::Backlog`] if the connection
    /// is still that full after `timeout`, [`Error::LinkLost`] if the
    /// connection is lost (its monitors fire). On an error the message was
    /// not sent, so nothing is lost unseen. A local port, or a node
    /// without a network, gets the message at once: local mailboxes have
    /// no limit (a consumer that must slow a local producer answers it,
    /// e.g. with [`call`](Node::call)).
    ///
    /// Not allowed on the dispatcher (inside callbacks), where waiting
    /// would stop the node: [`Error::WouldBlockDispatcher`].
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/snd-wait").unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let sink = node.port_fn(move |m| tx.send(m).unwrap());
    /// for i in 0..3 {
    ///     node.snd_wait(&sink, msg!["job", i], Duration::from_secs(5)).unwrap();
    /// }
    /// assert_eq!(rx.recv().unwrap(), msg!["job", 0]);
    /// ```
    pub fn snd_wait(&self, port: &PortId, msg: Message, timeout: Duration) -> Result<()> {
        crate::busy::note_send();
        if context::on_dispatcher() {
            return Err(Error::WouldBlockDispatcher { what: "snd_wait" });
        }
        match self.network() {
            Some(net) if !self.port_is_local(port) => net.send_wait(port, msg, timeout),
            _ => {
                self.snd(port, msg);
                Ok(())
            }
        }
    }

    /// Blocking RPC: sends `msg` plus a fresh reply port to `port` and
    /// waits up to `timeout` for the reply. Fails with [`Error::Timeout`],
    /// or [`Error::NoReply`] if `port` dies first. The reply goes straight
    /// to the waiting thread (a thread port's mailbox is not touched).
    ///
    /// Not allowed on the dispatcher (inside callbacks), where it would
    /// stop the node: use [`cal`](Node::cal) there.
    ///
    /// ```
    /// use aemp::{msg, Error, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/call").unwrap();
    /// let echo = node.port_fn(|m| {
    ///     let reply = m.reply_port().unwrap();
    ///     aemp::snd(&reply, msg!["echo", m[0].clone()]);
    /// });
    /// let reply = node.call(&echo, msg!["hi"], Duration::from_secs(5)).unwrap();
    /// assert_eq!(reply, msg!["echo", "hi"]);
    ///
    /// // A port that dies instead of answering: the error says so at once.
    /// let silent = node.port_fn(|_| panic!("no answer"));
    /// match node.call(&silent, msg!["hi"], Duration::from_secs(5)) {
    ///     Err(Error::NoReply { reason, .. }) => assert_eq!(reason.kind(), Some("die")),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn call(&self, port: &PortId, mut msg: Message, timeout: Duration) -> Result<Message> {
        if context::on_dispatcher() {
            return Err(Error::WouldBlockDispatcher { what: "call" });
        }
        // One channel carries the reply, or the callee's death.
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(2);
        let name = self.new_name();
        let death_tx = reply_tx.clone();
        let reply = self.insert(
            name.as_str(),
            Handlers::new(DefaultHandler::Ignore),
            |cell| cell.init_reply_channel(reply_tx),
        );
        let monitor = self.mon(port, move |reason| {
            let _ = death_tx.try_send(Err(reason));
        });
        msg.push_str(reply.id.as_str());
        let start = Instant::now();
        // (No deadline past what `Instant` can hold.)
        let deadline = start.checked_add(timeout);
        self.snd(port, msg);
        // Poll a while before sleeping (see `crate::busy`): a reply often
        // comes within microseconds.
        let mut polled = None;
        crate::busy::BusyWait::new(self.options().busy_wait).spin(
            start,
            deadline,
            || match reply_rx.try_recv() {
                Ok(r) => {
                    polled = Some(Ok(r));
                    true
                }
                Err(e) => e.is_disconnected(),
            },
        );
        let got = polled.unwrap_or_else(|| match deadline {
            Some(d) => reply_rx.recv_deadline(d).map_err(|_| ()),
            None => reply_rx.recv().map_err(|_| ()),
        });
        let result = match got {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(reason)) => Err(Error::NoReply {
                what: "call",
                port: port.clone(),
                cause: (reason.kind() == Some("transport_error"))
                    .then(|| self.last_connect_error(port.node()))
                    .flatten(),
                reason,
            }),
            Err(_) => Err(Error::Timeout {
                what: "call",
                port: port.clone(),
                after: timeout,
                cause: self.last_connect_error(port.node()),
            }),
        };
        drop(monitor);
        self.close_reply_port(&reply);
        result
    }
}
