//! Ports: a port is a cell in the node's port table with an inbox.
//!
//! **The room.** `port/` owns the port cell ([`PortCell`]). Its state
//! (inbox, scheduled and dead flags, monitors, the attached thread's side,
//! the direct-delivery route) is private to `cell.rs`; each change of it
//! is one method under one lock. The doors, by the thread that uses them:
//! - any sender: [`push`](PortCell::push);
//! - the dispatcher, one port at a time: [`take_batch`](PortCell::take_batch),
//!   [`end_batch`](PortCell::end_batch), [`lock_handlers`](PortCell::lock_handlers)
//!   (held for the whole batch), [`to_thread`](PortCell::to_thread),
//!   [`update_direct`](PortCell::update_direct), [`die`](PortCell::die)
//!   (returns the monitors to fire);
//! - `kil` on any thread: [`kill_if_idle`](PortCell::kill_if_idle), then
//!   [`drop_callbacks`](PortCell::drop_callbacks) (the one other locker of
//!   the callbacks, once no dispatcher can come);
//! - `mon` and its guard, any thread: [`add_monitor`](PortCell::add_monitor),
//!   [`remove_monitor`](PortCell::remove_monitor);
//! - port creation, before the cell is in the table:
//!   [`init_thread_port`](PortCell::init_thread_port),
//!   [`init_reply_channel`](PortCell::init_reply_channel); `rcv_thread`:
//!   [`attach_thread`](PortCell::attach_thread); the end of a blocking
//!   `call`: [`retire_reply_port`](PortCell::retire_reply_port);
//! - the attached thread (its [`Mailbox`]): [`take_arrivals`](PortCell::take_arrivals),
//!   [`await_arrival`](PortCell::await_arrival).
//!
//! The node (`node.rs`) keeps the port table and the run queue: it calls
//! these doors and does the table removal, scheduling and monitor firing
//! they ask for.
//!
//! **Invariants** (`PortState::check`, run whenever the state lock is let
//! go, in debug builds): items wait in the inbox only while the port is
//! scheduled (in the run queue or being processed); a dead port has no
//! inbox, no monitors and no direct route; a direct route to a thread has
//! a thread; a killed thread belongs to a dead port. Direct delivery
//! happens only with an empty inbox and the port not scheduled
//! (`PortState::may_skip_dispatcher`), so it never overtakes anything.
//! A thread's arrivals wait in its one-message slot (`cell.rs`, `Slot`),
//! filled only while its incoming queue is empty, then in that queue: the
//! slot's message is always the oldest, and the thread takes it without
//! the lock.
//!
//! - `cell.rs`: the cell, its state and its transitions;
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

mod cell;
mod handlers;
pub(crate) mod parked;
pub(crate) mod queue;
mod thread;

pub(crate) use cell::{AttachError, BatchEnd, IdleKill, PortCell, Pushed};
pub(crate) use handlers::{Callback, DefaultHandler, HandlerChange, Handlers};
pub(crate) use thread::spawn_port_thread;
pub use thread::{Mailbox, PortExit};

use crate::message::{Message, Reason};
use std::sync::Arc;

/// What travels through a port's inbox.
pub(crate) enum Item {
    Msg(Message),
    /// A message from another node: `src_node` is set while a callback
    /// handles it. (The source is a thin pointer, shared by all messages
    /// of a connection, to keep items a message and a pointer.)
    Remote(Message, Arc<crate::NodeId>),
    Kill(Reason),
    /// Rare items are boxed, for the same reason.
    Change(Box<HandlerChange>),
    /// A spawned port's init function, always the first item.
    Init(Box<Init>),
}

// Inboxes are written by one thread and read by another: every byte of an
// item is a cache line shared between two cores. A message is 56 bytes (its
// compact form spares the heap allocations that cost a local send far more
// than the bytes: see `Message`), an item one word more: 64, a cache line
// (72 measured slower: callback ping-pong 0.51 vs 0.47 us).
const _: () = assert!(std::mem::size_of::<Item>() <= 64);

pub(crate) struct Init {
    pub(crate) func: String,
    pub(crate) args: Message,
}
