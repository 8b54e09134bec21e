//! Bounded busy-waiting ([`Config::busy_wait`](crate::Config::busy_wait)):
//! a thread that runs out of work (the reactor, the dispatcher, a thread
//! port waiting in its mailbox) polls for more for a short while before
//! it sleeps. In a request/reply exchange the next message comes within
//! tens of microseconds, and waking a sleeping thread costs about as much
//! (on a VM an idle virtual CPU must be woken too); a round trip passes
//! four such threads where raw TCP passes two.
//!
//! The poll loop yields the CPU on every turn: on a machine with few
//! cores, a thread woken meanwhile (often the reactor, placed on the
//! waker's CPU) must not wait for the spinner's time slice to end.
//!
//! At most as many threads of the process poll at once as it has CPUs:
//! a process with many nodes (tests, simulations) would otherwise fill
//! every CPU with pollers that only yield to each other.
//!
//! A thread polls only while it converses: when something was sent (by
//! this thread, or, for the reactor, by its node) since its previous wait
//! began, so that an answer may be on its way; or while its waits are
//! very short (a stream, where polling is cheaper than sleeping), and
//! then only for as long as a very short wait (a paused stream sleeps). A
//! thread that only takes in a paced stream sleeps: polling there buys no
//! latency and would double the CPU bill.
//!
//! A thread that waits for the answer to what it sent to another node
//! reads that connection itself while it polls ([`Follow`], set up by the
//! network when the thread hands it a packet): the answer then comes to
//! it straight from the socket, as in a raw TCP exchange, instead of
//! through the reactor, which would be a second thread polling for it.

use crossbeam_utils::CachePadded;
use once_cell::sync::Lazy;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

thread_local! {
    /// Messages this thread sent (see [`note_send`]).
    static SENT: Cell<u64> = const { Cell::new(0) };
    /// The connection this thread sent to last, until its next wait.
    static FOLLOW: RefCell<Option<Weak<dyn Follow>>> = const { RefCell::new(None) };
}

/// A connection that a waiting thread may read itself (the network's
/// side: `net/follow.rs`). While one thread follows it, the reactor
/// leaves its reading to that thread; everything read is handed on in
/// order, as the reactor would.
pub(crate) trait Follow: Send + Sync {
    /// Takes the connection's reading over; false if another thread does
    /// or it cannot be read outside the reactor now.
    fn begin(&self) -> bool;
    /// Reads and hands on what arrived (never blocks for long).
    fn poll(&self);
    /// Gives the reading back to the reactor.
    fn end(&self);
}

/// This thread handed `conn` a packet: its next wait may follow it (see
/// [`Follow`]). Cheap when it is the same connection as last time.
pub(crate) fn follow_next(conn: &Weak<dyn Follow>) {
    FOLLOW.with(|f| {
        let mut f = f.borrow_mut();
        if !f.as_ref().is_some_and(|w| Weak::ptr_eq(w, conn)) {
            *f = Some(conn.clone());
        }
    });
}

/// The connection this thread sent to since its previous wait began, to
/// follow in this one.
fn take_follow() -> Option<Arc<dyn Follow>> {
    FOLLOW
        .with(|f| f.borrow_mut().take())
        .and_then(|w| w.upgrade())
}

/// Following a connection for one wait; given back on drop.
struct Following {
    conn: Arc<dyn Follow>,
    began: bool,
}

impl Following {
    /// Reads the connection, first taking it over if not yet done (the
    /// reactor may be reading it right now, or another thread follow it).
    fn poll(&mut self) {
        if !self.began {
            self.began = self.conn.begin();
        }
        if self.began {
            self.conn.poll();
        }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        if self.began {
            self.conn.end();
        }
    }
}

/// This thread sent a message: a thread waiting with
/// [`Sends::ThisThread`] may poll for the answer.
pub(crate) fn note_send() {
    SENT.with(|c| c.set(c.get().wrapping_add(1)));
}

/// Which sends tell a waiting thread that an answer may come.
pub(crate) enum Sends {
    /// Its own (a thread port, the dispatcher running callbacks).
    ThisThread,
    /// Those counted here: a node's packets to other nodes, for its
    /// reactor, which sends nothing itself but reads the answers.
    Counted(Arc<CachePadded<AtomicU64>>),
}

impl Sends {
    fn now(&self) -> u64 {
        match self {
            Sends::ThisThread => SENT.with(Cell::get),
            Sends::Counted(n) => n.load(Ordering::Relaxed),
        }
    }
}

/// Threads of this process polling right now.
static POLLING: AtomicUsize = AtomicUsize::new(0);

/// How many may poll at once: one per CPU.
static MAX_POLLING: Lazy<usize> =
    Lazy::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

/// A place among the polling threads, given back on drop.
struct PollingSlot;

impl PollingSlot {
    fn take() -> Option<PollingSlot> {
        POLLING
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n < *MAX_POLLING).then_some(n + 1)
            })
            .ok()
            .map(|_| PollingSlot)
    }
}

impl Drop for PollingSlot {
    fn drop(&mut self) {
        POLLING.fetch_sub(1, Ordering::Release);
    }
}

/// The default [`Config::busy_wait`](crate::Config::busy_wait); also the
/// budget of nodes without a network.
pub(crate) const DEFAULT_BUSY_WAIT: Duration = Duration::from_micros(100);

/// The busy-wait state of one thread. It spins only while its waits are
/// short: the last one ended within ¾ of the budget, after a sleep or
/// while spinning. So a thread whose work comes rarely, or at
/// a steady moderate rate that a spin catches only late, sleeps at once
/// instead of burning the budget each time (not a thread that follows a
/// connection for an answer, see [`Follow`]: it spins each wait). A
/// thread made [`conversing`](BusyWait::conversing) also needs a send
/// since its previous wait, or a very short last wait (under ¼ of the
/// budget; such a wait alone lets it spin a quarter of the budget).
pub(crate) struct BusyWait {
    budget: Duration,
    short: bool,
    /// The sends that make a wait worth polling (`None`: any wait is).
    sends: Option<Sends>,
    /// Their count when the previous wait began.
    seen: u64,
    /// The last wait was under ¼ of the budget.
    streaming: bool,
}

impl BusyWait {
    pub(crate) fn new(budget: Duration) -> BusyWait {
        BusyWait {
            budget,
            short: true,
            sends: None,
            seen: 0,
            streaming: false,
        }
    }

    /// A busy-wait that polls only while the thread converses (see the
    /// module doc): when `sends` counted one since its previous wait
    /// began, or its last wait was very short.
    pub(crate) fn conversing(budget: Duration, sends: Sends) -> BusyWait {
        let seen = sends.now();
        BusyWait {
            sends: Some(sends),
            seen,
            ..BusyWait::new(budget)
        }
    }

    /// How long this wait may poll (`None`: not at all). The whole budget
    /// when the thread sent something since its previous wait began (an
    /// answer may be on its way), or always without a conversation rule;
    /// a quarter of it when that wait was only very short (a stream): the
    /// next item of a stream comes as soon, or the stream paused, and
    /// polling on would burn the budget at every pause (a paced stream's
    /// jitter makes some waits short).
    fn conversing_now(&mut self) -> Option<Duration> {
        let Some(sends) = &self.sends else {
            return Some(self.budget);
        };
        let now = sends.now();
        let sent = now != self.seen;
        self.seen = now;
        if sent {
            Some(self.budget)
        } else if self.streaming {
            Some(self.budget / 4)
        } else {
            None
        }
    }

    /// Remembers how long a wait that found work took.
    fn waited(&mut self, took: Duration) {
        self.short = took < self.budget * 3 / 4;
        self.streaming = took < self.budget / 4;
    }

    /// Polls `ready` (yielding between polls) until it is true, the
    /// budget is spent or `until` passed; whether it became true. A wait
    /// starting at `start` ends in a sleep when this returns false: report
    /// its end with [`slept`](BusyWait::slept).
    pub(crate) fn spin(
        &mut self,
        start: Instant,
        until: Option<Instant>,
        mut ready: impl FnMut() -> bool,
    ) -> bool {
        // Taken in every wait: only a send since the previous one counts.
        // (Not by the reactor, which reads every connection anyway.)
        let follow = take_follow().filter(|_| !matches!(self.sends, Some(Sends::Counted(_))));
        let poll_for = self.conversing_now();
        // A thread awaiting an answer on a connection it reads itself
        // polls even after a slow wait: one slow answer (a busy peer, a
        // burst on the connection) says little about the next, and
        // sleeping would make that one slow too, since the reactor must
        // then read it and wake this thread, two wake-ups that a loaded
        // machine serves late. It stays within the budget per wait.
        let awaiting = follow.is_some();
        let Some(poll_for) = poll_for else {
            return false;
        };
        if (!self.short && !awaiting) || poll_for.is_zero() {
            return false;
        }
        let Some(_slot) = PollingSlot::take() else {
            return false;
        };
        let mut end = start + poll_for;
        if let Some(u) = until {
            end = end.min(u);
        }
        let mut following = follow.map(|conn| Following { conn, began: false });
        loop {
            if let Some(f) = &mut following {
                f.poll();
            }
            if ready() {
                // Worth it only if the work came well within the budget
                // (¾ of it):
                // work that keeps arriving late in the spin (a steady,
                // moderate rate) costs a busy CPU for little latency, so
                // the next wait sleeps at once (and spinning resumes when
                // the waits are short again, see `slept`).
                self.waited(start.elapsed());
                return true;
            }
            let now = Instant::now();
            if now >= end {
                // Spinning until a caller's deadline says nothing about
                // how soon work comes.
                self.short = now < start + self.budget;
                self.streaming = false;
                return false;
            }
            std::thread::yield_now();
        }
    }

    /// A wait that started at `start` ended after sleeping, with work:
    /// spin next time if it was short, within ¾ of the budget. (A wait
    /// just under the budget is a steady moderate rate, which a spin would
    /// catch only late; a request/reply exchange whose threads slept comes
    /// back well within it, and spinning brings it down further.)
    pub(crate) fn slept(&mut self, start: Instant) {
        self.waited(start.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spins until `ready_after` passed (retrying while every polling
    /// slot is taken by other tests' threads, or a loaded machine let the
    /// budget pass first); the state afterwards.
    fn after_spin(budget: Duration, ready_after: Duration) -> bool {
        loop {
            let mut b = BusyWait::new(budget);
            let start = Instant::now();
            if b.spin(start, None, || start.elapsed() >= ready_after) {
                return b.short;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn work_caught_early_keeps_spinning() {
        assert!(after_spin(Duration::from_secs(10), Duration::ZERO));
    }

    #[test]
    fn work_caught_late_in_the_spin_sleeps_next_time() {
        let budget = Duration::from_millis(20);
        assert!(!after_spin(budget, budget * 7 / 8));
        let mut b = BusyWait::new(budget);
        b.short = false;
        assert!(!b.spin(Instant::now(), None, || true), "spun while long");
    }

    #[test]
    fn a_conversing_thread_spins_only_after_a_send_or_a_very_short_wait() {
        // (The rule alone: `spin` asks it first, and may also find every
        // polling slot taken by other tests' threads.)
        let budget = Duration::from_secs(10);
        let mut b = BusyWait::conversing(budget, Sends::ThisThread);
        assert_eq!(b.conversing_now(), None, "nothing sent since it was made");
        note_send();
        assert_eq!(
            b.conversing_now(),
            Some(budget),
            "sent since the previous wait"
        );
        assert_eq!(
            b.conversing_now(),
            None,
            "nothing sent since the previous wait"
        );
        // A very short wait (a stream): the next one polls without a send,
        // for a quarter of the budget.
        b.waited(budget / 5);
        assert_eq!(b.conversing_now(), Some(budget / 4));
        b.waited(budget / 5);
        note_send();
        assert_eq!(b.conversing_now(), Some(budget), "a send: the whole budget");
        b.waited(budget / 2);
        assert_eq!(b.conversing_now(), None);
        assert!(
            !b.spin(Instant::now(), None, || true),
            "spun without a send"
        );
        // Without the rule: every wait may poll.
        assert_eq!(BusyWait::new(budget).conversing_now(), Some(budget));

        let count = Arc::new(CachePadded::new(AtomicU64::new(0)));
        let mut b = BusyWait::conversing(budget, Sends::Counted(count.clone()));
        assert_eq!(b.conversing_now(), None);
        count.fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            b.conversing_now(),
            Some(budget),
            "the node sent since the previous wait"
        );
    }

    /// A connection that counts how often a waiting thread read it.
    #[derive(Default)]
    struct Counted {
        begun: AtomicUsize,
        polled: AtomicUsize,
        ended: AtomicUsize,
    }

    impl Follow for Counted {
        fn begin(&self) -> bool {
            self.begun.fetch_add(1, Ordering::Relaxed);
            true
        }
        fn poll(&self) {
            self.polled.fetch_add(1, Ordering::Relaxed);
        }
        fn end(&self) {
            self.ended.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_thread_awaiting_an_answer_it_reads_itself_spins_after_a_slow_wait() {
        let budget = Duration::from_secs(10);
        let conn = Arc::new(Counted::default());
        let weak: Weak<dyn Follow> = Arc::downgrade(&(conn.clone() as Arc<dyn Follow>));
        let mut b = BusyWait::conversing(budget, Sends::ThisThread);
        let mut spun = false;
        for _ in 0..10_000 {
            // The previous wait was slow: without a connection to follow,
            // the next one sleeps at once.
            b.short = false;
            note_send();
            assert!(
                !b.spin(Instant::now(), None, || true),
                "spun after a slow wait"
            );
            b.short = false;
            note_send();
            follow_next(&weak);
            let polled = conn.polled.load(Ordering::Relaxed);
            // Ready after the connection was read (a polling slot may be
            // taken by other tests' threads: then try again).
            if b.spin(Instant::now(), None, || {
                conn.polled.load(Ordering::Relaxed) > polled
            }) {
                spun = true;
                break;
            }
            std::thread::yield_now();
        }
        assert!(
            spun,
            "never spun after a slow wait while awaiting an answer"
        );
        assert!(conn.begun.load(Ordering::Relaxed) >= 1);
        assert_eq!(
            conn.begun.load(Ordering::Relaxed),
            conn.ended.load(Ordering::Relaxed),
            "the connection was given back"
        );
    }

    #[test]
    fn a_short_wait_after_sleeping_spins_again() {
        let mut b = BusyWait::new(Duration::from_secs(10));
        b.short = false;
        b.slept(Instant::now());
        assert!(b.short);
        b.slept(Instant::now() - Duration::from_secs(11));
        assert!(!b.short);
    }
}
