//! The port cell: one port's state, and every transition of it.
//!
//! The state lives behind one mutex and only this file touches it; each
//! method below is one transition, made under one lock. In debug builds
//! [`PortState::check`] verifies the invariants whenever the lock is let
//! go (see the module doc of `port`).

use super::handlers::Handlers;
use super::Item;
use crate::busy::BusyWait;
use crate::message::{Message, Reason};
use crate::monitor::{next_monitor_id, MonitorAction, MonitorEntry};
use crate::PortId;
use crossbeam_channel::Sender;
use once_cell::race::OnceBox;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Where a message may go without passing the dispatcher.
enum Direct {
    No,
    /// Straight into the attached thread's incoming queue.
    Thread,
    /// Straight into a channel (reply port of a blocking call, which also
    /// learns of the callee's death through it).
    Channel(Sender<Result<Message, Reason>>),
}

/// The sender-facing half of a thread port's mailbox: senders only append
/// here; the thread sorts arrivals into its private queue outside the lock.
#[derive(Default)]
struct ThreadSide {
    incoming: VecDeque<Message>,
    /// The thread sleeps on the cell's condition variable.
    waiting: bool,
    killed: Option<Reason>,
}

struct PortState {
    inbox: VecDeque<Item>,
    /// The port is in the dispatcher's run queue or being processed.
    scheduled: bool,
    dead: bool,
    monitors: Vec<MonitorEntry>,
    thread: Option<ThreadSide>,
    direct: Direct,
}

impl PortState {
    /// The invariants of a port's state, true whenever its lock is free.
    /// Debug builds check them after every transition.
    #[inline]
    fn check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        // Items wait only in a scheduled inbox (a push that queues makes
        // the port scheduled; a batch ends unscheduled only when empty).
        debug_assert!(
            self.scheduled || self.inbox.is_empty(),
            "items wait unscheduled"
        );
        if self.dead {
            debug_assert!(self.inbox.is_empty(), "a dead port has an inbox");
            debug_assert!(self.monitors.is_empty(), "a dead port has monitors");
            debug_assert!(
                matches!(self.direct, Direct::No),
                "a dead port takes messages"
            );
        }
        if matches!(self.direct, Direct::Thread) {
            debug_assert!(self.thread.is_some(), "direct delivery to no thread");
        }
        if let Some(side) = &self.thread {
            debug_assert!(
                side.killed.is_none() || self.dead,
                "killed thread, live port"
            );
        }
    }

    /// A message may skip the dispatcher only when that reorders nothing:
    /// nothing is queued and nothing is being processed.
    #[inline]
    fn may_skip_dispatcher(&self) -> bool {
        self.inbox.is_empty() && !self.scheduled && !matches!(self.direct, Direct::No)
    }

    /// Puts a message into the thread's slot if it may go there (see
    /// [`Slot`]), else appends it to the incoming queue; wakes the thread
    /// if it sleeps.
    ///
    /// Not inlined: inlined into `push`, it made the callback ports' path
    /// through `push` 15% slower in the local send figure (alternating
    /// runs), and the thread ports' no faster.
    #[inline(never)]
    fn hand_to_thread(&mut self, msg: Message, cell: &PortCell) {
        if let Some(side) = self.thread.as_mut() {
            let slot = cell.slot.get().expect("a thread side has a slot");
            let msg = if side.incoming.is_empty() {
                slot.put(msg)
            } else {
                Err(msg)
            };
            if let Err(msg) = msg {
                side.incoming.push_back(msg);
                slot.arrived.store(true, Ordering::Release);
            }
            if side.waiting {
                cell.wake.notify_one();
            }
        }
    }
}

/// The locked state; checks the invariants when let go (debug builds).
struct Locked<'a>(MutexGuard<'a, PortState>);

impl Deref for Locked<'_> {
    type Target = PortState;
    #[inline]
    fn deref(&self) -> &PortState {
        &self.0
    }
}

impl DerefMut for Locked<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut PortState {
        &mut self.0
    }
}

impl Drop for Locked<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.check();
    }
}

/// A port: its ID, its state and its callbacks.
pub(crate) struct PortCell {
    pub(crate) id: PortId,
    /// The name's hash in the port table, kept so that removal never
    /// re-reads the name.
    pub(crate) hash: u64,
    state: Mutex<PortState>,
    /// Wakes the attached thread.
    wake: Condvar,
    /// The attached thread's one-message slot and arrival flag (see
    /// [`Slot`]), made with its thread side.
    slot: OnceBox<Slot>,
    /// Locked by the dispatcher for the whole of a batch, and by nobody
    /// else while the port is alive: the one other locker is the thread
    /// that kills an idle port ([`PortCell::drop_callbacks`]), once the
    /// port is dead and unscheduled, so no dispatcher can come to it.
    handlers: Mutex<Handlers>,
}

/// The result of [`PortCell::push`].
pub(crate) enum Pushed {
    Done,
    /// The caller must put the port into the run queue.
    Schedule,
    /// The port is dead; here is the item back.
    Dead(Item),
}

/// The result of [`PortCell::end_batch`].
pub(crate) enum BatchEnd {
    /// The inbox was empty (or the port died): the port is unscheduled.
    Idle,
    /// More arrived but other jobs wait: the port stays scheduled and the
    /// caller must put it back into the run queue.
    Yield,
    /// The next batch is in the caller's buffer.
    Next,
}

/// The result of [`PortCell::kill_if_idle`].
pub(crate) enum IdleKill {
    AlreadyDead,
    /// Something is queued, running, or a thread is attached.
    Busy,
    /// Dead now; these monitors must fire.
    Killed(Vec<MonitorEntry>),
}

/// Why [`PortCell::attach_thread`] refused.
pub(crate) enum AttachError {
    Dead,
    AlreadyAttached,
}

/// The result of [`PortCell::await_arrival`].
pub(crate) enum Arrival {
    /// Something arrived, or (seen while polling) the port was killed: the
    /// thread's next [`take_arrivals`](PortCell::take_arrivals) tells.
    Arrived,
    Killed(Reason),
    TimedOut,
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
            slot: OnceBox::new(),
            handlers: Mutex::new(handlers),
        }
    }

    #[inline]
    fn lock(&self) -> Locked<'_> {
        Locked(self.state.lock())
    }

    /// The port's callbacks, for the dispatcher's batch (see the field).
    #[inline]
    pub(crate) fn lock_handlers(&self) -> MutexGuard<'_, Handlers> {
        self.handlers.lock()
    }

    // ---- Creation (before the cell is in the table) ----

    /// A fresh thread port: its messages go straight to the thread.
    pub(crate) fn init_thread_port(&self) {
        let mut st = self.lock();
        self.slot.get_or_init(Box::default);
        st.thread = Some(ThreadSide::default());
        st.direct = Direct::Thread;
    }

    /// A fresh reply port of a blocking call: its messages go into `tx`.
    pub(crate) fn init_reply_channel(&self, tx: Sender<Result<Message, Reason>>) {
        self.lock().direct = Direct::Channel(tx);
    }

    // ---- Senders ----

    /// Appends an item to the inbox (or delivers a message directly when
    /// that cannot reorder anything).
    #[inline]
    pub(crate) fn push(&self, item: Item) -> Pushed {
        let mut st = self.lock();
        if st.dead {
            return Pushed::Dead(item);
        }
        if st.may_skip_dispatcher() {
            // A message from another node takes the direct paths too: a
            // thread or a waiting call has no use for its source node.
            let msg = match item {
                Item::Msg(msg) | Item::Remote(msg, _) => msg,
                other => return Self::enqueue(st, other),
            };
            match &st.direct {
                Direct::Thread => st.hand_to_thread(msg, self),
                // A second reply to a call has nobody to go to.
                Direct::Channel(tx) => {
                    let _ = tx.try_send(Ok(msg));
                }
                Direct::No => unreachable!("may_skip_dispatcher"),
            }
            return Pushed::Done;
        }
        Self::enqueue(st, item)
    }

    #[inline]
    fn enqueue(mut st: Locked<'_>, item: Item) -> Pushed {
        st.inbox.push_back(item);
        if st.scheduled {
            Pushed::Done
        } else {
            st.scheduled = true;
            Pushed::Schedule
        }
    }

    // ---- The dispatcher ----

    /// Starts processing: the inbox trades places with `batch` (empty).
    #[inline]
    pub(crate) fn take_batch(&self, batch: &mut VecDeque<Item>) {
        debug_assert!(batch.is_empty());
        let mut st = self.lock();
        debug_assert!(st.scheduled, "a batch of an unscheduled port");
        std::mem::swap(&mut st.inbox, batch);
    }

    /// Ends a processed (drained) batch: takes the next one into `batch`
    /// unless the inbox is empty or `others_wait`. Each batch costs one
    /// lock: the look for more also takes the next batch.
    #[inline]
    pub(crate) fn end_batch(
        &self,
        batch: &mut VecDeque<Item>,
        others_wait: impl FnOnce() -> bool,
    ) -> BatchEnd {
        debug_assert!(batch.is_empty());
        let mut st = self.lock();
        if st.dead || st.inbox.is_empty() {
            st.scheduled = false;
            // An idle port keeps no buffer.
            let mut idle_buffer = std::mem::take(&mut st.inbox);
            drop(st);
            if idle_buffer.capacity() > batch.capacity() {
                std::mem::swap(batch, &mut idle_buffer);
            }
            return BatchEnd::Idle;
        }
        if others_wait() {
            return BatchEnd::Yield;
        }
        std::mem::swap(&mut st.inbox, batch);
        BatchEnd::Next
    }

    /// Hands a message to the attached thread (the dispatcher's path).
    #[inline]
    pub(crate) fn to_thread(&self, msg: Message) {
        self.lock().hand_to_thread(msg, self);
    }

    /// Recomputes whether messages may skip the dispatcher, after a
    /// handler change.
    pub(crate) fn update_direct(&self, handlers: &Handlers) {
        let mut st = self.lock();
        if matches!(st.direct, Direct::Channel(_)) {
            return;
        }
        st.direct = if st.thread.is_some() && handlers.is_thread_only() {
            Direct::Thread
        } else {
            Direct::No
        };
    }

    // ---- Death ----

    /// The port dies: marks it dead, drops its inbox, wakes its thread
    /// with the reason. Returns the monitors to fire, or `None` if it was
    /// dead already.
    pub(crate) fn die(&self, reason: &Reason) -> Option<Vec<MonitorEntry>> {
        let mut st = self.lock();
        if st.dead {
            return None;
        }
        st.dead = true;
        st.inbox.clear();
        st.direct = Direct::No;
        if let Some(side) = st.thread.as_mut() {
            side.killed = Some(reason.clone());
            side.incoming.clear();
            let slot = self.slot.get().expect("a thread side has a slot");
            // (Unless the thread is taking it right now: it was sent
            // before the kill, as one taken a moment earlier.)
            drop(slot.take());
            // Ends the thread's poll too (see `await_arrival`).
            slot.arrived.store(true, Ordering::Release);
            self.wake.notify_all();
        }
        Some(std::mem::take(&mut st.monitors))
    }

    /// Kills a callback port with nothing in its inbox and nothing
    /// running: there is nothing to process before the kill. The caller
    /// then [drops the callbacks](Self::drop_callbacks).
    pub(crate) fn kill_if_idle(&self) -> IdleKill {
        let mut st = self.lock();
        if st.dead {
            return IdleKill::AlreadyDead;
        }
        let idle = !st.scheduled
            && st.inbox.is_empty()
            && st.thread.is_none()
            && matches!(st.direct, Direct::No);
        if !idle {
            return IdleKill::Busy;
        }
        st.dead = true;
        IdleKill::Killed(std::mem::take(&mut st.monitors))
    }

    /// Drops the callbacks of a port [killed idle](Self::kill_if_idle):
    /// no dispatcher will touch it again (it is neither scheduled nor able
    /// to be). Outside the state lock, as their captures may call back
    /// into aemp.
    pub(crate) fn drop_callbacks(&self) {
        debug_assert!(self.state.lock().dead);
        let dead = Handlers::new(super::DefaultHandler::Dead);
        let callbacks = std::mem::replace(&mut *self.handlers.lock(), dead);
        drop(callbacks);
    }

    /// Retires a blocking call's reply port at once unless someone
    /// monitors it or something is queued; `true` if it did (the caller
    /// then takes it out of the table).
    pub(crate) fn retire_reply_port(&self) -> bool {
        let mut st = self.lock();
        if st.monitors.is_empty() && st.inbox.is_empty() {
            st.dead = true;
            st.direct = Direct::No;
            return true;
        }
        false
    }

    // ---- Monitors ----

    /// Adds a monitor; gives the action back if the port is dead.
    pub(crate) fn add_monitor(&self, action: MonitorAction) -> Result<u64, MonitorAction> {
        let mut st = self.lock();
        if st.dead {
            return Err(action);
        }
        let id = next_monitor_id();
        st.monitors.push(MonitorEntry { id, action });
        Ok(id)
    }

    /// Removes monitor `id` if it has not fired; the caller drops it
    /// (and what its action owns) outside the lock.
    pub(crate) fn remove_monitor(&self, id: u64) -> Option<MonitorEntry> {
        let mut st = self.lock();
        let i = st.monitors.iter().position(|m| m.id == id)?;
        Some(st.monitors.swap_remove(i))
    }

    // ---- The attached thread ----

    /// Attaches a thread to a live port (`rcv_thread`). Its messages keep
    /// passing the dispatcher until the `AttachThread` change is applied.
    pub(crate) fn attach_thread(&self) -> Result<(), AttachError> {
        let mut st = self.lock();
        if st.dead {
            return Err(AttachError::Dead);
        }
        if st.thread.is_some() {
            return Err(AttachError::AlreadyAttached);
        }
        self.slot.get_or_init(Box::default);
        st.thread = Some(ThreadSide::default());
        Ok(())
    }

    /// Messages arrived for the thread and not yet taken, if it has one.
    pub(crate) fn arrivals_len(&self) -> Option<usize> {
        let st = self.lock();
        let side = st.thread.as_ref()?;
        let in_slot = self.slot.get().is_some_and(Slot::is_full);
        Some(side.incoming.len() + usize::from(in_slot))
    }

    /// The thread takes its arrivals, oldest first, into `into` (empty);
    /// the kill reason instead once the port is dead.
    ///
    /// Without the lock when there is a message in the slot (it is older
    /// than anything in the incoming queue, which is then taken next time)
    /// or nothing at all: a thread that takes a message a sender just put
    /// there touches nothing the sender's next message needs, and neither
    /// does one that finds nothing. A kill sets `arrived`, so it is never
    /// missed, only seen after a message sent before it.
    pub(crate) fn take_arrivals(&self, into: &mut VecDeque<Message>) -> Result<(), Reason> {
        debug_assert!(into.is_empty());
        let slot = self.slot.get().expect("thread port state");
        if let Some(msg) = slot.take() {
            into.push_back(msg);
            return Ok(());
        }
        if !slot.arrived.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut st = self.lock();
        let side = st.thread.as_mut().expect("thread port state");
        if let Some(reason) = &side.killed {
            return Err(reason.clone());
        }
        // The slot may have filled since: its message is the oldest.
        std::mem::swap(&mut side.incoming, into);
        if let Some(msg) = slot.take() {
            into.push_front(msg);
        }
        slot.arrived.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// The thread waits until something arrives, the port is killed, or
    /// `deadline` passes. It first polls without the lock, as a reply often
    /// comes within a microsecond: on the CPU alone while that pays off
    /// (see [`PreSpin`]), then as long as `busy` allows, yielding; then it
    /// sleeps.
    pub(crate) fn await_arrival(
        &self,
        deadline: Option<Instant>,
        busy: &mut BusyWait,
        pre_spin: &mut PreSpin,
    ) -> Arrival {
        let start = Instant::now();
        // The slot's address is read once: the thread then polls the one
        // cache line that a sender writes.
        let slot = self.slot.get().expect("thread port state");
        let ready = || slot.maybe_arrived();
        // `arrived` is set under the lock with every arrival in the queue
        // and by a kill, and cleared only by the thread taking its
        // arrivals; the slot is emptied only by the thread (or a kill,
        // which sets `arrived`): when either is seen, the caller's next
        // take finds the message or the kill.
        if deadline.is_none_or(|d| start < d) {
            if pre_spin.spin(start, deadline, ready) {
                return Arrival::Arrived;
            }
            if busy.spin(start, deadline, ready) {
                pre_spin.caught_by_yielding(start);
                return Arrival::Arrived;
            }
        }
        let mut st = self.lock();
        loop {
            let side = st.thread.as_mut().expect("thread port state");
            if let Some(reason) = &side.killed {
                return Arrival::Killed(reason.clone());
            }
            if !side.incoming.is_empty() || slot.maybe_arrived() {
                return Arrival::Arrived;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Arrival::TimedOut;
            }
            side.waiting = true;
            match deadline {
                Some(d) => {
                    self.wake.wait_until(&mut st.0, d);
                }
                None => self.wake.wait(&mut st.0),
            }
            let side = st.thread.as_mut().expect("thread port state");
            side.waiting = false;
            if !side.incoming.is_empty() || slot.maybe_arrived() {
                busy.slept(start);
            }
        }
    }
}

/// A thread port's one-message slot, beside its incoming queue, and the
/// flag that says something waits in that queue.
///
/// A sender puts a message here, under the cell's lock, when the queue is
/// empty and the slot too; otherwise into the queue. So a message in the
/// slot is older than every message in the queue, and the thread takes it
/// without the lock. In an exchange (a request, its answer) each message
/// then crosses between the two threads' CPUs in this one cache line,
/// instead of through the lock, the queue's buffer and the `arrived`
/// flag, each a line that would cross too.
///
/// States: empty, full, and *taking* (the thread, or a kill under the
/// lock, moving the message out); only a sender fills it (under the lock,
/// so one at a time), only a taker empties it.
///
/// `arrived` shares the line, so that a waiting thread polls that line
/// alone (the cell's lock, which senders write, lies elsewhere).
#[repr(align(64))]
struct Slot {
    msg: UnsafeCell<MaybeUninit<Message>>,
    state: AtomicU8,
    /// Set under the lock when a message goes into the queue and when the
    /// port is killed; cleared only by the thread taking its arrivals.
    arrived: AtomicBool,
}

// One cache line (a `Message` is 56 bytes); a larger message type would
// split it in two.
const _: () = assert!(std::mem::size_of::<Slot>() == 64);

const SLOT_EMPTY: u8 = 0;
const SLOT_FULL: u8 = 1;
const SLOT_TAKING: u8 = 2;

// SAFETY: the message is written only while the slot is empty, by one
// sender at a time (under the cell's lock), and read only by the one taker
// that moved the state from full to taking; `Message` is `Send`. (`Send`
// follows from the fields.)
unsafe impl Sync for Slot {}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            msg: UnsafeCell::new(MaybeUninit::uninit()),
            state: AtomicU8::new(SLOT_EMPTY),
            arrived: AtomicBool::new(false),
        }
    }
}

impl Slot {
    /// Puts `msg` in if the slot is empty, else gives it back. Only
    /// under the cell's lock.
    #[inline]
    fn put(&self, msg: Message) -> Result<(), Message> {
        // Acquire: the last taker's read of the message happened before.
        if self.state.load(Ordering::Acquire) != SLOT_EMPTY {
            return Err(msg);
        }
        // SAFETY: empty, and no other sender (the lock): nobody reads or
        // writes the message now.
        unsafe { (*self.msg.get()).write(msg) };
        self.state.store(SLOT_FULL, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn is_full(&self) -> bool {
        self.state.load(Ordering::Acquire) == SLOT_FULL
    }

    /// Whether something may have arrived since the thread last took its
    /// arrivals: a message here or in the queue, or the kill.
    #[inline]
    fn maybe_arrived(&self) -> bool {
        self.arrived.load(Ordering::Acquire) || self.is_full()
    }

    /// Moves the message out, if there is one.
    #[inline]
    fn take(&self) -> Option<Message> {
        self.state
            .compare_exchange(SLOT_FULL, SLOT_TAKING, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // SAFETY: this taker alone moved the state from full (a message
        // was written, released by the store that made it full).
        let msg = unsafe { (*self.msg.get()).assume_init_read() };
        self.state.store(SLOT_EMPTY, Ordering::Release);
        Some(msg)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.take());
    }
}

/// The first poll of a waiting thread, on the CPU alone. A yielding poll
/// (`BusyWait`) pays a system call per turn, and a message that comes
/// meanwhile waits for it to return: most of a ping-pong's round trip
/// between two threads on two cores. Polling without yielding is worth it
/// only while the sender runs on another CPU; on a machine with more
/// runnable threads than CPUs it takes the CPU from the very thread it
/// waits for. So it is tried while it catches arrivals, and after one
/// miss only once the yielding poll caught two arrivals in a row within
/// its time.
pub(crate) struct PreSpin {
    limit: Duration,
    on: bool,
    /// Arrivals in a row the yielding poll caught within `limit`.
    quick: u8,
}

impl PreSpin {
    /// Polls for at most `limit` (none when zero).
    pub(crate) fn new(limit: Duration) -> PreSpin {
        PreSpin {
            limit,
            on: !limit.is_zero(),
            quick: 0,
        }
    }

    /// Polls `ready` (no yielding) for at most the limit or until
    /// `deadline`, if it is on; whether it became true.
    #[inline]
    fn spin(
        &mut self,
        start: Instant,
        deadline: Option<Instant>,
        mut ready: impl FnMut() -> bool,
    ) -> bool {
        if !self.on {
            return false;
        }
        let until = deadline.map_or(start + self.limit, |d| d.min(start + self.limit));
        loop {
            // The clock is read once per 64 polls: a poll takes a few
            // nanoseconds, a clock read some tens.
            for _ in 0..64 {
                if ready() {
                    return true;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= until {
                break;
            }
        }
        self.on = false;
        self.quick = 0;
        ready()
    }

    /// The yielding poll caught an arrival of a wait that began at `start`.
    #[inline]
    fn caught_by_yielding(&mut self, start: Instant) {
        if self.limit.is_zero() || self.on {
            return;
        }
        if start.elapsed() < self.limit {
            self.quick += 1;
            if self.quick >= 2 {
                self.on = true;
            }
        } else {
            self.quick = 0;
        }
    }
}

#[cfg(test)]
mod tests;
