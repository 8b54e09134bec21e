//! Thread ports: a port that owns one OS thread and a selective-receive
//! mailbox (Coro::MP's `port_async` / `rcv_async`).

use super::cell::{Arrival, PortCell, PreSpin};
use super::queue::TagQueue;
use crate::busy::{BusyWait, Sends};
use crate::error::{Error, Result};
use crate::message::{Message, Reason};
use crate::node::Node;
use crate::PortId;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a thread port's thread returns. Returning `()` or `Ok(())` kills
/// the port normally; `Err(e)` kills it with `["die", e.to_string()]`
/// (a no-op when the port is already dead, e.g. after `get` returned
/// [`Error::Killed`]).
///
/// ```
/// use aemp::{msg, Node};
/// use std::time::Duration;
/// let node = Node::new("doc/port-exit").unwrap();
/// let p = node.port_thread(|mb| -> Result<(), String> {
///     let m = mb.get().map_err(|e| e.to_string())?;
///     Err(format!("cannot handle {m}")) // the port dies with ["die", ...]
/// });
/// let (tx, rx) = crossbeam_channel::bounded(1);
/// node.mon(&p, move |r| tx.send(r).unwrap()).forget();
/// node.snd(&p, msg!["x"]);
/// let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
/// assert_eq!(r, aemp::reason!["die", r#"cannot handle ["x"]"#]);
/// ```
pub trait PortExit {
    /// The kill reason for the port.
    fn into_reason(self) -> Reason;
}

impl PortExit for () {
    fn into_reason(self) -> Reason {
        Reason::normal()
    }
}

impl<E: Display> PortExit for std::result::Result<(), E> {
    fn into_reason(self) -> Reason {
        match self {
            Ok(()) => Reason::normal(),
            Err(e) => Reason::die(e.to_string()),
        }
    }
}

/// The receiving end of a thread port, handed to its thread.
///
/// Messages not taken stay queued, in order. Selection is indexed:
/// [`get_tag`](Mailbox::get_tag) never looks at other tags' messages, and a
/// waiting [`get_cond`](Mailbox::get_cond) looks only at new arrivals.
/// When the port is killed, every `get` returns [`Error::Killed`] so the
/// thread can unwind with `?`.
///
/// ```
/// use aemp::{msg, Node};
/// use std::time::Duration;
/// let node = Node::new("mailbox-doc").unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// let p = node.port_thread(move |mb| -> aemp::Result<()> {
///     let first = mb.get_tag("b")?;          // skips the queued "a"
///     let second = mb.get()?;                // then the oldest: "a"
///     tx.send((first, second)).unwrap();
///     Ok(())
/// });
/// node.snd(&p, msg!["a", 1]);
/// node.snd(&p, msg!["b", 2]);
/// let (first, second) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
/// assert_eq!(first, msg![2]);            // get_tag drops the tag
/// assert_eq!(second, msg!["a", 1]);
/// ```
pub struct Mailbox {
    node: Node,
    cell: Arc<PortCell>,
    /// The port's ID, a copy: the cell's shares a cache line with the
    /// lock that every sender to the port takes, and a thread that names
    /// its port in each reply would fetch that line back each time.
    port: PortId,
    queue: TagQueue,
    spare: VecDeque<Message>,
    busy: BusyWait,
    /// A wait's first poll, on the CPU alone.
    pre_spin: PreSpin,
}

impl Mailbox {
    /// This thread's port.
    ///
    /// ```
    /// use aemp::Node;
    /// use std::time::Duration;
    /// let node = Node::new("doc/mb-port").unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let p = node.port_thread(move |mb| tx.send(mb.port().clone()).unwrap());
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), p);
    /// ```
    pub fn port(&self) -> &PortId {
        &self.port
    }

    /// The node the port lives on.
    ///
    /// ```
    /// use aemp::Node;
    /// use std::time::Duration;
    /// let node = Node::new("doc/mb-node").unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// node.port_thread(move |mb| {
    ///     let helper = mb.node().port_fn(|_| {}); // more ports on the same node
    ///     tx.send(helper).unwrap();
    /// });
    /// let helper = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    /// assert!(node.port_is_local(&helper));
    /// ```
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Messages waiting (taken into the queue or still arriving).
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/mb-len").unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
    /// let p = node.port_thread(move |mb| {
    ///     go_rx.recv().unwrap(); // wait until both messages were sent
    ///     tx.send((mb.len(), mb.is_empty())).unwrap();
    /// });
    /// node.snd(&p, msg!["a"]);
    /// node.snd(&p, msg!["b"]);
    /// go_tx.send(()).unwrap();
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), (2, false));
    /// ```
    pub fn len(&self) -> usize {
        self.queue.len() + self.cell.arrivals_len().unwrap_or(0)
    }

    /// True when no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The oldest message, waiting as long as it takes.
    ///
    /// ```
    /// use aemp::{msg, reason, Error, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/mb-get").unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let p = node.port_thread(move |mb| {
    ///     loop {
    ///         match mb.get() {
    ///             Ok(m) => tx.send(m.to_string()).unwrap(),
    ///             // Killed: every get returns Error::Killed, so `?` unwinds too.
    ///             Err(Error::Killed { reason, .. }) => break tx.send(format!("killed: {reason}")).unwrap(),
    ///             Err(e) => panic!("{e}"),
    ///         }
    ///     }
    /// });
    /// node.snd(&p, msg!["one"]);
    /// let t = Duration::from_secs(5);
    /// assert_eq!(rx.recv_timeout(t).unwrap(), r#"["one"]"#);
    /// node.kil(&p, reason!["stop"]).unwrap();
    /// assert_eq!(rx.recv_timeout(t).unwrap(), r#"killed: ["stop"]"#);
    /// ```
    pub fn get(&mut self) -> Result<Message> {
        self.wait(None, |q| q.pop_front()).map(expect_some)
    }

    /// The oldest message, or `None` after `timeout` (zero: do not wait).
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/mb-get-timeout").unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let p = node.port_thread(move |mb| -> aemp::Result<()> {
    ///     let first = mb.get_timeout(Duration::from_secs(5))?;
    ///     let idle = mb.get_timeout(Duration::from_millis(10))?; // nothing more comes
    ///     tx.send((first, idle)).unwrap();
    ///     Ok(())
    /// });
    /// node.snd(&p, msg!["tick"]);
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), (Some(msg!["tick"]), None));
    /// ```
    pub fn get_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        self.wait(Some(deadline(timeout)), |q| q.pop_front())
    }

    /// The oldest message whose element 0 is `tag`, *without* the tag.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/mb-get-tag").unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let p = node.port_thread(move |mb| -> aemp::Result<()> {
    ///     let login = mb.get_tag("login")?; // "data" waits, in order
    ///     let data = mb.get_tag("data")?;
    ///     tx.send((login, data)).unwrap();
    ///     Ok(())
    /// });
    /// node.snd(&p, msg!["data", "x"]);
    /// node.snd(&p, msg!["login", "ann"]);
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), (msg!["ann"], msg!["x"]));
    /// ```
    pub fn get_tag(&mut self, tag: &str) -> Result<Message> {
        self.wait(None, |q| q.take_tag(tag).map(Message::without_tag))
            .map(expect_some)
    }

    /// Like [`get_tag`](Mailbox::get_tag), or `None` after `timeout`.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/mb-get-tag-timeout").unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let p = node.port_thread(move |mb| -> aemp::Result<()> {
    ///     let ack = mb.get_tag_timeout("ack", Duration::from_millis(20))?; // only "other" came
    ///     tx.send((ack, mb.len())).unwrap();
    ///     Ok(())
    /// });
    /// node.snd(&p, msg!["other"]);
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), (None, 1));
    /// ```
    pub fn get_tag_timeout(&mut self, tag: &str, timeout: Duration) -> Result<Option<Message>> {
        self.wait(Some(deadline(timeout)), |q| {
            q.take_tag(tag).map(Message::without_tag)
        })
    }

    /// The oldest message, decoded as `T` with [`Message::decode`] (a
    /// tuple, struct, or an enum chosen by the tag). The message is taken
    /// even when it does not decode: the error names it.
    ///
    /// ```
    /// use aemp::Node;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// #[serde(rename_all = "snake_case")]
    /// enum Job { Square(u64), Stop }
    ///
    /// let node = Node::new("get-as-doc").unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let p = node.port_thread(move |mb| -> aemp::Result<()> {
    ///     while let Job::Square(n) = mb.get_as::<Job>()? {
    ///         tx.send(n * n).unwrap();
    ///     }
    ///     Ok(())
    /// });
    /// node.snd_value(&p, &Job::Square(3)).unwrap();
    /// node.snd_value(&p, &Job::Stop).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 9);
    /// ```
    pub fn get_as<T: DeserializeOwned>(&mut self) -> Result<T> {
        self.get()?.decode()
    }

    /// The oldest message whose element 0 is `tag`, decoded whole (tag
    /// included) as `T`: a selective receive of one enum variant, or of a
    /// tuple or struct whose first field is the tag. Other messages stay
    /// queued; the chosen one is taken even when it does not decode.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize, Debug, PartialEq)]
    /// #[serde(rename_all = "snake_case")]
    /// enum Reply { Done { id: u32, ok: bool }, Progress(u32) }
    ///
    /// let node = Node::new("get-tag-as-doc").unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let p = node.port_thread(move |mb| -> aemp::Result<()> {
    ///     tx.send(mb.get_tag_as::<Reply>("done")?).unwrap(); // skips "progress"
    ///     Ok(())
    /// });
    /// node.snd(&p, msg!["progress", 50]);
    /// node.snd(&p, msg!["done", 7, true]);
    /// assert_eq!(rx.recv().unwrap(), Reply::Done { id: 7, ok: true });
    /// ```
    pub fn get_tag_as<T: DeserializeOwned>(&mut self, tag: &str) -> Result<T> {
        self.wait(None, |q| q.take_tag(tag))
            .map(expect_some)?
            .decode()
    }

    /// The oldest message for which `pred` is true, whole (tag included).
    /// Each queued message is shown to `pred` at most once per call.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/mb-get-cond").unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let p = node.port_thread(move |mb| -> aemp::Result<()> {
    ///     // The first reading over 100, whole; smaller ones stay queued.
    ///     let hot = mb.get_cond(|m| m.tag() == Some("temp") && m[1].as_i64() > Some(100))?;
    ///     tx.send(hot).unwrap();
    ///     Ok(())
    /// });
    /// node.snd(&p, msg!["temp", 20]);
    /// node.snd(&p, msg!["temp", 120]);
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), msg!["temp", 120]);
    /// ```
    pub fn get_cond(&mut self, pred: impl FnMut(&Message) -> bool) -> Result<Message> {
        self.get_cond_inner(None, pred).map(expect_some)
    }

    /// Like [`get_cond`](Mailbox::get_cond), or `None` after `timeout`.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/mb-get-cond-timeout").unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let p = node.port_thread(move |mb| -> aemp::Result<()> {
    ///     let big = mb.get_cond_timeout(|m| m.len() > 2, Duration::from_millis(20))?;
    ///     tx.send(big).unwrap();
    ///     Ok(())
    /// });
    /// node.snd(&p, msg!["small"]);
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), None);
    /// ```
    pub fn get_cond_timeout(
        &mut self,
        pred: impl FnMut(&Message) -> bool,
        timeout: Duration,
    ) -> Result<Option<Message>> {
        self.get_cond_inner(Some(deadline(timeout)), pred)
    }

    /// Switch-style receive: `select` returns `Some(handler)` for the first
    /// message it wants; that message is removed and passed to the handler,
    /// whose result is returned (Coro::MP's predicate returning a code ref).
    ///
    /// ```
    /// # use aemp::{msg, Message, Node};
    /// # let node = Node::new("select-doc").unwrap();
    /// # let (tx, rx) = std::sync::mpsc::channel();
    /// let p = node.port_thread(move |mb| -> aemp::Result<()> {
    ///     let text = mb.select(|m| match m.tag() {
    ///         Some("add") => Some(Box::new(|m: Message| format!("add {}", m[1])) as Box<dyn FnOnce(Message) -> String>),
    ///         Some("quit") => Some(Box::new(|_| "quit".to_string())),
    ///         _ => None,
    ///     })?;
    ///     tx.send(text).unwrap();
    ///     Ok(())
    /// });
    /// node.snd(&p, msg!["noise"]);
    /// node.snd(&p, msg!["add", 5]);
    /// assert_eq!(rx.recv().unwrap(), "add 5");
    /// ```
    pub fn select<R, H: FnOnce(Message) -> R>(
        &mut self,
        mut select: impl FnMut(&Message) -> Option<H>,
    ) -> Result<R> {
        let mut chosen = None;
        let msg = self.get_cond(|m| {
            chosen = select(m);
            chosen.is_some()
        })?;
        Ok(chosen.expect("chosen with the message")(msg))
    }

    /// A blocking RPC from this thread: sends `msg` plus a fresh reply port
    /// to `port` and waits for the reply without touching this mailbox.
    /// See [`Node::call`].
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/mb-call").unwrap();
    /// let clock = node.port_fn(|m| {
    ///     let reply = m.reply_port().unwrap();
    ///     aemp::snd(&reply, msg!["time", 1234]);
    /// });
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// node.port_thread(move |mb| -> aemp::Result<()> {
    ///     let now = mb.call(&clock, msg!["now"], Duration::from_secs(5))?;
    ///     tx.send((now, mb.len())).unwrap(); // the reply did not go through the mailbox
    ///     Ok(())
    /// });
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), (msg!["time", 1234], 0));
    /// ```
    pub fn call(&self, port: &PortId, msg: Message, timeout: Duration) -> Result<Message> {
        self.node.call(port, msg, timeout)
    }

    fn get_cond_inner(
        &mut self,
        deadline: Option<Instant>,
        mut pred: impl FnMut(&Message) -> bool,
    ) -> Result<Option<Message>> {
        let mut from = 0u64;
        self.wait(deadline, |q| match q.take_first_match(from, &mut pred) {
            Ok(m) => Some(m),
            Err(next) => {
                from = next;
                None
            }
        })
    }

    /// Moves arrivals into the queue, tries `pick`, waits for more.
    fn wait<R>(
        &mut self,
        deadline: Option<Instant>,
        mut pick: impl FnMut(&mut TagQueue) -> Option<R>,
    ) -> Result<Option<R>> {
        loop {
            self.take_arrivals()?;
            if let Some(r) = pick(&mut self.queue) {
                return Ok(Some(r));
            }
            match self
                .cell
                .await_arrival(deadline, &mut self.busy, &mut self.pre_spin)
            {
                Arrival::Arrived => {}
                Arrival::Killed(reason) => return Err(self.killed(reason)),
                Arrival::TimedOut => return Ok(None),
            }
        }
    }

    fn take_arrivals(&mut self) -> Result<()> {
        if let Err(reason) = self.cell.take_arrivals(&mut self.spare) {
            return Err(self.killed(reason));
        }
        self.queue.append(&mut self.spare);
        Ok(())
    }

    fn killed(&mut self, reason: Reason) -> Error {
        self.queue.clear();
        Error::Killed {
            port: self.cell.id.clone(),
            reason,
        }
    }
}

fn expect_some<T>(v: Option<T>) -> T {
    v.expect("waited without a deadline")
}

fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or(now + Duration::from_secs(86400 * 365))
}

/// How long a waiting thread port polls on the CPU before polling with
/// yields (see `PreSpin`): long enough for the reply of a ping-pong with a
/// thread running on another core, short beside the cost of sleeping and
/// being woken. Never longer than the node's busy-wait budget (none when
/// busy-waiting is off).
const PRE_SPIN: Duration = Duration::from_micros(3);

/// Starts the thread of a thread port (a parked one if there is one, see
/// `parked.rs`). The port's thread side must exist.
pub(crate) fn spawn_port_thread<R: PortExit>(
    node: &Node,
    cell: Arc<PortCell>,
    f: impl FnOnce(&mut Mailbox) -> R + Send + 'static,
) {
    let thread_node = node.clone();
    let thread_cell = cell.clone();
    let stack = node.options().thread_stack_size;
    let spawned = super::parked::run(
        stack,
        Box::new(move || {
            let node = thread_node;
            let _ctx = crate::context::enter(&node, thread_cell.id.clone());
            let mut mb = Mailbox {
                node: node.clone(),
                port: thread_cell.id.clone(),
                cell: thread_cell,
                queue: TagQueue::default(),
                spare: VecDeque::new(),
                busy: BusyWait::conversing(node.options().busy_wait, Sends::ThisThread),
                pre_spin: PreSpin::new(node.options().busy_wait.min(PRE_SPIN)),
            };
            let reason = match crate::context::catch(|| f(&mut mb)) {
                Ok(exit) => exit.into_reason(),
                Err(text) => Reason::die(text),
            };
            node.kill_cell(&mb.cell, reason);
        }),
    );
    if let Err(e) = spawned {
        node.kill_cell(&cell, Reason::die(format!("cannot start thread: {e}")));
    }
}
