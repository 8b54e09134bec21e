//! The node's dispatcher thread: runs port callbacks, one port at a time,
//! a batch of its inbox at a time, and short tasks (timer closures,
//! monitor callbacks of ports that were already dead).
//!
//! A port's batch is one [`Turn`]: the port's callbacks are locked, the
//! port is current, and what its callbacks ask of their own port (handler
//! changes, a self-kill) is applied after each callback, before the next
//! item.

use crate::context;
use crate::message::{Message, Reason};
use crate::node::{Node, NodeInner};
use crate::port::{BatchEnd, DefaultHandler, Handlers, Item, PortCell};
use crate::NodeId;
use crossbeam_channel::Receiver;
use parking_lot::MutexGuard;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::{Arc, Weak};

/// The most inbox slots the dispatcher keeps between batches.
const KEPT_CAPACITY: usize = 4096;

/// How many ports in a row the dispatcher takes from its own queue before
/// it looks at the run queue again: callbacks that keep scheduling each
/// other (a ping-pong) do not shut out the other threads' ports, timers
/// and tasks.
const OWN_RUN: u32 = 64;

thread_local! {
    /// While this thread runs its node's jobs: the node (`NodeInner`'s
    /// address); else 0.
    static RUNNING: Cell<usize> = const { Cell::new(0) };
    /// The ports the dispatcher scheduled for its own node while running
    /// jobs, in order. They wait here rather than in the run queue, a
    /// channel that other threads send into: a callback port answering
    /// another costs no atomic operations on either side of a channel.
    static OWN: RefCell<VecDeque<Arc<PortCell>>> = const { RefCell::new(VecDeque::new()) };
}

/// Queues `cell` on the dispatcher's own queue if this thread is `node`'s
/// dispatcher, running its jobs; else hands it back.
pub(crate) fn schedule_own(node: &Node, cell: Arc<PortCell>) -> Option<Arc<PortCell>> {
    let here = RUNNING.try_with(Cell::get).unwrap_or(0);
    if here == 0 || here != Arc::as_ptr(&node.inner) as usize {
        return Some(cell);
    }
    OWN.with(|own| own.borrow_mut().push_back(cell));
    None
}

fn pop_own() -> Option<Arc<PortCell>> {
    OWN.with(|own| own.borrow_mut().pop_front())
}

fn own_waiting() -> bool {
    OWN.with(|own| !own.borrow().is_empty())
}

pub(crate) enum Job {
    /// The port has items in its inbox.
    Port(Arc<PortCell>),
    Task(Box<dyn FnOnce() + Send>),
    /// The node shut down (`lifecycle.rs`): the thread ends; later jobs
    /// are dropped.
    Stop,
}

/// Starts the dispatcher thread; its handle is for the node's shutdown.
pub(crate) fn start(node: &Node, queue: Receiver<Job>) -> std::thread::JoinHandle<()> {
    let weak = Arc::downgrade(&node.inner);
    std::thread::Builder::new()
        .name(format!("aemp-dispatch {}", node.id()))
        .spawn(move || run(weak, queue))
        .expect("cannot start the node's dispatcher thread")
}

fn run(weak: Weak<NodeInner>, queue: Receiver<Job>) {
    context::mark_dispatcher();
    // The inbox buffers trade places with this one, so that a busy port's
    // inbox keeps its capacity instead of growing again after each batch.
    let mut spare = VecDeque::new();
    // Out of jobs, poll the queue a while before sleeping (see
    // `crate::busy`): a callback answering a remote request is often
    // asked again within tens of microseconds.
    let mut busy = match weak.upgrade() {
        Some(inner) => crate::busy::BusyWait::conversing(
            Node { inner }.options().busy_wait,
            crate::busy::Sends::ThisThread,
        ),
        None => return,
    };
    // The node is held only while there is work, so that dropping the last
    // handle elsewhere ends this thread.
    loop {
        let start = std::time::Instant::now();
        let mut first = None;
        busy.spin(start, None, || match queue.try_recv() {
            Ok(job) => {
                first = Some(job);
                true
            }
            Err(e) => e.is_disconnected(),
        });
        let mut job = match first {
            Some(job) => job,
            None => match queue.recv() {
                Ok(job) => {
                    busy.slept(start);
                    job
                }
                Err(_) => break,
            },
        };
        let Some(inner) = weak.upgrade() else { break };
        let node = Node { inner };
        context::set_node(Some(node.clone()));
        // Ports scheduled from here on go to the own queue, which is
        // empty again when the loop ends.
        RUNNING.with(|r| r.set(Arc::as_ptr(&node.inner) as usize));
        let mut own_run = 0;
        loop {
            match job {
                Job::Port(cell) => run_port(&node, &cell, &mut spare, &queue),
                Job::Task(f) => {
                    if let Err(text) = context::catch(f) {
                        log::error!("a timer or monitor callback panicked: {text}");
                    }
                }
                Job::Stop => {
                    RUNNING.with(|r| r.set(0));
                    OWN.with(|own| own.borrow_mut().clear());
                    context::set_node(None);
                    return;
                }
            }
            // The own queue first, the run queue at least every `OWN_RUN`
            // ports.
            let own = if own_run < OWN_RUN { pop_own() } else { None };
            job = match own {
                Some(cell) => {
                    own_run += 1;
                    Job::Port(cell)
                }
                None => {
                    own_run = 0;
                    match queue.try_recv() {
                        Ok(next) => next,
                        Err(_) => match pop_own() {
                            Some(cell) => Job::Port(cell),
                            None => break,
                        },
                    }
                }
            };
        }
        RUNNING.with(|r| r.set(0));
        context::set_node(None);
    }
}

/// Processes a port's inbox a batch at a time while nothing else waits in
/// the run queue; puts the port back into the run queue if more arrived
/// but others wait (so busy ports take turns). Each batch costs one lock:
/// the look for more also takes the next batch.
fn run_port(node: &Node, cell: &Arc<PortCell>, spare: &mut VecDeque<Item>, queue: &Receiver<Job>) {
    cell.take_batch(spare);
    loop {
        if !spare.is_empty() {
            if let Some((reason, quiet)) = process(node, cell, spare) {
                node.die(cell, reason, quiet);
            }
        }
        // A burst once queued may not pin its memory for good.
        spare.shrink_to(KEPT_CAPACITY);
        match cell.end_batch(spare, || !queue.is_empty() || own_waiting()) {
            BatchEnd::Idle => return,
            // Behind the other threads' ports (the own queue goes first).
            BatchEnd::Yield => return node.schedule_shared(cell.clone()),
            BatchEnd::Next => {}
        }
    }
}

/// Runs the batch; returns the kill reason (and whether to kill quietly)
/// if the port must die.
fn process(
    node: &Node,
    cell: &Arc<PortCell>,
    batch: &mut VecDeque<Item>,
) -> Option<(Reason, bool)> {
    let ctx = context::Processing::begin(cell);
    let mut turn = Turn {
        node,
        cell,
        handlers: cell.lock_handlers(),
        ctx,
    };
    for item in batch.drain(..) {
        if let Some(death) = turn.item(item) {
            turn.handlers.clear();
            return Some(death);
        }
    }
    None
}

/// One turn of the dispatcher on one port: a batch of its inbox, run with
/// the port's callbacks locked and the port current. Fields drop in order:
/// the callbacks are let go before the port stops being current.
struct Turn<'a> {
    node: &'a Node,
    cell: &'a Arc<PortCell>,
    handlers: MutexGuard<'a, Handlers>,
    /// Where the callbacks' handler changes and self-kill wait.
    ctx: context::Processing,
}

impl Turn<'_> {
    /// Handles one inbox item; the kill reason (and whether to kill
    /// quietly) if the port must die.
    fn item(&mut self, item: Item) -> Option<(Reason, bool)> {
        let mut quiet = false;
        let mut reason = match item {
            Item::Msg(msg) => self.deliver(msg),
            Item::Remote(msg, src) => {
                let _src = context::enter_src(NodeId::clone(&src));
                self.deliver(msg)
            }
            Item::Kill(reason) => Some(reason),
            Item::Change(change) => {
                self.handlers.apply(*change);
                self.cell.update_direct(&self.handlers);
                None
            }
            Item::Init(init) => {
                let mut failed = crate::node_port::run_init(self.node, &init.func, init.args);
                self.apply_requests(&mut failed);
                // An init function that installed no callback leaves no port.
                if failed.is_none() && !self.handlers.touched {
                    quiet = true;
                    Some(Reason::no_such_port(self.cell.id.as_str()))
                } else {
                    failed
                }
            }
        };
        self.apply_requests(&mut reason);
        reason.map(|reason| (reason, quiet))
    }

    /// Applies the handler changes and self-kill the last callback asked
    /// for.
    fn apply_requests(&mut self, reason: &mut Option<Reason>) {
        let (changes, kill_self) = self.ctx.take_requests();
        if !changes.is_empty() {
            for change in changes {
                self.handlers.apply(change);
            }
            self.cell.update_direct(&self.handlers);
        }
        if reason.is_none() {
            *reason = kill_self;
        }
    }

    fn deliver(&mut self, msg: Message) -> Option<Reason> {
        let handlers = &mut *self.handlers;
        if !handlers.tags.is_empty() {
            let tagged = match msg.tag() {
                Some(tag) => handlers.tags.get_mut(tag),
                None => None,
            };
            if let Some(cb) = tagged {
                // (A compact message stays compact.)
                let msg = msg.without_tag();
                return context::catch(|| cb(msg)).err().map(Reason::die);
            }
        }
        match &mut handlers.default {
            DefaultHandler::Callback(cb) => context::catch(|| cb(msg)).err().map(Reason::die),
            DefaultHandler::Thread => {
                self.cell.to_thread(msg);
                None
            }
            DefaultHandler::KillOnMessage => Some(unhandled(&msg)),
            DefaultHandler::NodePort => {
                crate::node_port::call_function(self.node, msg);
                None
            }
            DefaultHandler::Ignore | DefaultHandler::Dead => None,
        }
    }
}

/// `["unhandled_message", "no callback found for message '<tag>'"]`, the
/// tag cut to 30 characters with non-printables shown as `.`.
fn unhandled(msg: &Message) -> Reason {
    let tag = match msg.first() {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    };
    let tag: String = tag
        .chars()
        .take(30)
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    crate::reason![
        "unhandled_message",
        format!("no callback found for message '{tag}'")
    ]
}
