//! The pool's manager thread: a [`Manager`] holds the pool's state locked
//! and has one method per duty (drop retired workers, start a worker, stop
//! an idle one), then sleeps until the next deadline or a wake-up; once the
//! pool is closing and idle it stops every worker and finishes the pool.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::MutexGuard;

use super::{Inner, Job, PoolState, Slot};
use crate::rpc::serialiser::Serialiser;
use crate::rpc::Error;

/// What a duty did.
enum Duty {
    /// It acted (with the lock released for a while): look again.
    Acted,
    /// Nothing to do before this time (`None`: nothing until woken).
    Until(Option<Instant>),
}

/// The manager thread's view of the pool: the pool and its state, locked
/// except while a worker is started or stopped.
pub(super) struct Manager<'a, S: Serialiser> {
    pool: &'a Arc<Inner<S>>,
    st: MutexGuard<'a, PoolState<S>>,
}

impl<S: Serialiser> Manager<'_, S> {
    /// The manager thread: starts and stops workers, and shuts the pool down.
    pub(super) fn run(pool: Arc<Inner<S>>) {
        let mut m = Manager {
            pool: &pool,
            st: pool.st.lock(),
        };
        while !m.drained() {
            let now = Instant::now();
            if m.drop_retired() {
                continue;
            }
            let Duty::Until(start_due) = m.start_if_needed(now) else {
                continue;
            };
            let Duty::Until(stop_due) = m.stop_idle(now) else {
                continue;
            };
            m.sleep(match (start_due, stop_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            });
        }
        m.shut_down();
    }

    /// Closing, nothing queued, no callback running, no call in flight.
    fn drained(&self) -> bool {
        let st = &self.st;
        st.closing
            && st.queue.is_empty()
            && st.in_callbacks == 0
            && st.slots.iter().all(|s| s.load == 0)
    }

    /// Retired workers with nothing left to do go (dropped outside the
    /// lock). Whether any went.
    fn drop_retired(&mut self) -> bool {
        let (gone, keep): (Vec<Slot<S>>, Vec<Slot<S>>) = std::mem::take(&mut self.st.slots)
            .into_iter()
            .partition(|s| s.retired && s.load == 0);
        self.st.slots = keep;
        if gone.is_empty() {
            return false;
        }
        MutexGuard::unlocked(&mut self.st, || drop(gone));
        true
    }

    /// Starts a worker when all are busy or too few are idle, at most one
    /// per `start` gap, at most `max`.
    fn start_if_needed(&mut self, now: Instant) -> Duty {
        let (pool, st) = (self.pool, &mut self.st);
        let active = st.slots.iter().filter(|s| !s.retired).count() + st.starting;
        let idle = st
            .slots
            .iter()
            .filter(|s| !s.retired && s.load == 0)
            .count()
            + st.starting;
        let all_busy = st.slots.iter().all(|s| s.retired || s.load >= pool.load);
        let need = (!st.queue.is_empty() && all_busy && st.starting == 0)
            || (!st.closing && idle < pool.idle);
        if !need || active >= pool.max {
            return Duty::Until(None);
        }
        let due = st.last_start.map_or(now, |t| t + pool.start);
        if active != 0 && due > now {
            return Duty::Until(Some(due));
        }
        st.starting += 1;
        st.last_start = Some(now);
        MutexGuard::unlocked(st, || {
            if let Err(e) = pool.start_worker() {
                pool.start_failed(&e);
            }
        });
        Duty::Acted
    }

    /// Stops one worker idle for `stop`, beyond the `idle` minimum.
    fn stop_idle(&mut self, now: Instant) -> Duty {
        let (pool, st) = (self.pool, &mut self.st);
        let idle = || st.slots.iter().filter(|s| !s.retired && s.load == 0);
        if idle().count() <= pool.idle || st.closing {
            return Duty::Until(None);
        }
        let Some(oldest) = idle().min_by_key(|s| s.idle_since) else {
            return Duty::Until(None);
        };
        let due = oldest.idle_since + pool.stop;
        if due > now {
            return Duty::Until(Some(due));
        }
        let id = oldest.id;
        let pos = st.slots.iter().position(|s| s.id == id).expect("slot");
        let slot = st.slots.remove(pos);
        MutexGuard::unlocked(st, || drop(slot));
        Duty::Acted
    }

    /// Sleeps until `deadline` (`None`: until woken).
    fn sleep(&mut self, deadline: Option<Instant>) {
        match deadline {
            Some(d) => {
                self.pool.wake.wait_until(&mut self.st, d);
            }
            None => self.pool.wake.wait(&mut self.st),
        }
    }

    /// Closing and idle: stops every worker, waits until all have exited,
    /// runs `on_destroy` and marks the pool finished.
    fn shut_down(self) {
        let Manager { pool, mut st } = self;
        let slots = std::mem::take(&mut st.slots);
        drop(st);
        drop(slots);
        let mut st = pool.st.lock();
        while st.alive > 0 || st.starting > 0 {
            pool.wake.wait(&mut st);
        }
        drop(st);
        if let Some(f) = &pool.on_destroy {
            f();
        }
        pool.st.lock().finished = true;
        pool.done.notify_all();
    }
}

impl<S: Serialiser> Inner<S> {
    /// A worker could not be started: reports it; with no worker at all,
    /// queued jobs can never run, so they fail with the same error.
    fn start_failed(&self, e: &Error) {
        self.template.report(e);
        let mut st = self.st.lock();
        if st.slots.is_empty() && st.starting == 0 {
            let failed: Vec<Job<S>> = st.queue.drain(..).collect();
            drop(st);
            for job in failed {
                (job.cb)(Err(e.clone()));
            }
        }
    }
}
