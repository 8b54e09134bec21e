//! Ports: a port is a cell in the node's port table with an inbox.
//!
//! - `mod.rs`: the cell, its inbox and how items enter it;
//! - `handlers.rs`: the callbacks a port runs (default, per tag);
//! - `queue.rs`: the tag-indexed selective-receive queue of thread ports;
//! - `thread.rs`: thread ports and their [`Mailbox`].
//!
//! Everything sent to a port enters its inbox in order: messages, kills,
//! handler changes, a spawned port's init. The node's dispatcher drains the
//! inbox in batches, one port at a time, so a port's callbacks never run
//! concurrently and always see items in arrival order. Two shortcuts skip
//! the dispatcher when order allows it (the inbox is empty and nothing is
//! being processed): messages for a thread port with no tag callbacks go
//! straight to its thread, and replies for a blocking `call` go straight to
//! the waiting thread's channel.

mod handlers;
pub(crate) mod queue;
mod thread;

pub(crate) use handlers::{Callback, DefaultHandler, HandlerChange, Handlers};
pub(crate) use thread::{spawn_port_thread, ThreadSide};
pub use thread::{Mailbox, PortExit};

use crate::message::{Message, Reason};
use crate::monitor::MonitorEntry;
use crate::PortId;
use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What travels through a port's inbox.
pub(crate) enum Item {
    Msg(Message),
    /// A message from another node: `src_node` is set while a callback
    /// handles it. (The source is a thin pointer, shared by all messages
    /// of a connection, to keep items at 32 bytes.)
    Remote(Message, Arc<crate::NodeId>),
    Kill(Reason),
    /// Rare items are boxed, for the same reason.
    Change(Box<HandlerChange>),
    /// A spawned port's init function, always the first item.
    Init(Box<Init>),
}

// Inboxes are written by one thread and read by another: every byte of an
// item is a cache line shared between two cores.
const _: () = assert!(std::mem::size_of::<Item>() <= 32);

pub(crate) struct Init {
    pub(crate) func: String,
    pub(crate) args: Message,
}

/// Where a message may go without passing the dispatcher.
pub(crate) enum Direct {
    No,
    /// Straight into the attached thread's incoming queue.
    Thread,
    /// Straight into a channel (reply port of a blocking call, which also
    /// learns of the callee's death through it).
    Channel(Sender<Result<Message, Reason>>),
}

pub(crate) struct PortState {
    pub(crate) inbox: VecDeque<Item>,
    /// The port is in the dispatcher's run queue or being processed.
    pub(crate) scheduled: bool,
    pub(crate) dead: bool,
    pub(crate) monitors: Vec<MonitorEntry>,
    pub(crate) thread: Option<ThreadSide>,
    pub(crate) direct: Direct,
}

pub(crate) struct PortCell {
    pub(crate) id: PortId,
    /// The name's hash in the port table, kept so that removal never
    /// re-reads the name.
    pub(crate) hash: u64,
    pub(crate) state: Mutex<PortState>,
    /// Wakes the attached thread.
    pub(crate) wake: Condvar,
    /// Set when a message for the attached thread arrives, so that the
    /// thread can spin briefly on it before sleeping.
    pub(crate) arrived: AtomicBool,
    /// Only ever locked by the thread processing the port (the dispatcher).
    pub(crate) handlers: Mutex<Handlers>,
}

/// The result of [`PortCell::push`].
pub(crate) enum Pushed {
    Done,
    /// The caller must put the port into the run queue.
    Schedule,
    /// The port is dead; here is the item back.
    Dead(Item),
}

impl PortCell {
    pub(crate) fn new(id: PortId, hash: u64, handlers: Handlers) -> PortCell {
        PortCell {
            id,
            hash,
            state: Mutex::new(PortState {
                inbox: VecDeque::new(),
                scheduled: false,
                dead: false,
                monitors: Vec::new(),
                thread: None,
                direct: Direct::No,
            }),
            wake: Condvar::new(),
            arrived: AtomicBool::new(false),
            handlers: Mutex::new(handlers),
        }
    }

    /// Appends an item to the inbox (or delivers a message directly when
    /// that cannot reorder anything).
    pub(crate) fn push(&self, item: Item) -> Pushed {
        let mut st = self.state.lock();
        if st.dead {
            return Pushed::Dead(item);
        }
        // A message from another node takes the direct paths too: a
        // thread or a waiting call has no use for its source node.
        let item = match item {
            Item::Remote(msg, src) => {
                if st.inbox.is_empty() && !st.scheduled && !matches!(st.direct, Direct::No) {
                    Item::Msg(msg)
                } else {
                    Item::Remote(msg, src)
                }
            }
            other => other,
        };
        if let Item::Msg(msg) = item {
            if st.inbox.is_empty() && !st.scheduled {
                match &st.direct {
                    Direct::No => {}
                    Direct::Thread => {
                        let side = st.thread.as_mut().expect("direct thread delivery");
                        side.incoming.push_back(msg);
                        self.arrived.store(true, Ordering::Release);
                        if side.waiting {
                            self.wake.notify_one();
                        }
                        return Pushed::Done;
                    }
                    Direct::Channel(tx) => {
                        // A second reply to a call has nobody to go to.
                        let _ = tx.try_send(Ok(msg));
                        return Pushed::Done;
                    }
                }
            }
            st.inbox.push_back(Item::Msg(msg));
        } else {
            st.inbox.push_back(item);
        }
        if st.scheduled {
            Pushed::Done
        } else {
            st.scheduled = true;
            Pushed::Schedule
        }
    }

    /// Hands a message to the attached thread (the dispatcher's path).
    pub(crate) fn to_thread(&self, msg: Message) {
        let mut st = self.state.lock();
        if let Some(side) = st.thread.as_mut() {
            side.incoming.push_back(msg);
            self.arrived.store(true, Ordering::Release);
            if side.waiting {
                self.wake.notify_one();
            }
        }
    }

    /// Recomputes whether messages may skip the dispatcher, after a
    /// handler change.
    pub(crate) fn update_direct(&self, handlers: &Handlers) {
        let mut st = self.state.lock();
        if matches!(st.direct, Direct::Channel(_)) {
            return;
        }
        st.direct = if st.thread.is_some() && handlers.is_thread_only() {
            Direct::Thread
        } else {
            Direct::No
        };
    }
}
