//! One timer thread for the whole process: `after`, `cal` time-outs.
//!
//! Timer actions must be short (a send, or handing a closure to a node's
//! dispatcher); user closures never run on this thread.

use once_cell::sync::Lazy;
use parking_lot::{Condvar, Mutex};
use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Action = Box<dyn FnOnce() + Send>;

struct Entry {
    at: Instant,
    seq: u64,
    cancelled: Arc<AtomicBool>,
    action: Action,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so that the heap's top is the earliest entry.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct Timers {
    heap: Mutex<(BinaryHeap<Entry>, u64)>,
    changed: Condvar,
}

static TIMERS: Lazy<Arc<Timers>> = Lazy::new(|| {
    let t = Arc::new(Timers {
        heap: Mutex::new((BinaryHeap::new(), 0)),
        changed: Condvar::new(),
    });
    let worker = t.clone();
    std::thread::Builder::new()
        .name("aemp-timer".into())
        .spawn(move || worker.run())
        .expect("cannot start the aemp timer thread");
    t
});

impl Timers {
    fn run(&self) {
        let mut guard = self.heap.lock();
        loop {
            let now = Instant::now();
            match guard.0.peek() {
                None => self.changed.wait(&mut guard),
                Some(e) if e.at > now => {
                    let at = e.at;
                    self.changed.wait_until(&mut guard, at);
                }
                Some(_) => {
                    let e = guard.0.pop().expect("peeked");
                    if !e.cancelled.load(Ordering::Acquire) {
                        drop(guard);
                        (e.action)();
                        guard = self.heap.lock();
                    }
                }
            }
        }
    }
}

/// A handle to a pending timer; dropping it does *not* cancel it.
#[derive(Clone, Debug)]
pub struct Timer {
    cancelled: Arc<AtomicBool>,
}

impl Timer {
    /// Stops the timer if it has not fired yet.
    ///
    /// ```
    /// use aemp::Node;
    /// use std::time::Duration;
    /// let node = Node::new("doc/cancel").unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let timer = node.after_fn(Duration::from_millis(20), move || tx.send(()).unwrap());
    /// timer.cancel();
    /// assert!(rx.recv_timeout(Duration::from_millis(100)).is_err()); // never ran
    /// ```
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }
}

/// Runs `action` on the timer thread after `delay`.
pub(crate) fn schedule(delay: Duration, action: impl FnOnce() + Send + 'static) -> Timer {
    let cancelled = Arc::new(AtomicBool::new(false));
    let at = Instant::now() + delay;
    let timers = &*TIMERS;
    let mut guard = timers.heap.lock();
    let seq = guard.1;
    guard.1 += 1;
    let earliest = guard.0.peek().is_none_or(|e| at < e.at);
    guard.0.push(Entry {
        at,
        seq,
        cancelled: cancelled.clone(),
        action: Box::new(action),
    });
    if earliest {
        timers.changed.notify_one();
    }
    Timer { cancelled }
}
