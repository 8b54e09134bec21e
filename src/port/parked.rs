//! Parked port threads: a thread port's OS thread, once its function
//! returned, waits here (a bounded cache, process-wide) for the next
//! thread port with the same stack size, instead of ending. Creating a
//! thread costs far more than waking a parked one (tens of µs against a
//! few), and blocking-style programs make many short-lived thread ports.
//!
//! A thread waits at most [`IDLE_TIMEOUT`], and at most [`MAX_PARKED`]
//! wait at once: a thread that parks when the cache is full makes the one
//! parked longest end. The threads are all named
//! `aemp-port` (a reused thread could not be renamed; a crash report names
//! the port); thread-local values that a port's function set stay with
//! the thread.

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::busy::BusyWait;

/// A port thread's work: the whole life of one thread port.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// At most this many threads wait for work at once.
pub(crate) const MAX_PARKED: usize = 256;

/// A parked thread ends after waiting this long.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A waiting thread: its stack size, its serial number, and where its
/// next job goes (dropping the sender tells it to end).
struct Parked {
    stack: Option<usize>,
    serial: u64,
    tx: Sender<Job>,
}

/// Tells parked threads apart.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(0);

/// The waiting threads, most recently parked last (reused first: its
/// stack is likely still in the cache).
static IDLE: Mutex<Vec<Parked>> = Mutex::new(Vec::new());

/// Runs `job` on a parked thread with the same stack size (`None`: the
/// standard library's default), or on a new thread.
pub(crate) fn run(stack: Option<usize>, job: Job) -> io::Result<()> {
    let mut job = job;
    loop {
        let parked = {
            let mut idle = IDLE.lock();
            let i = idle.iter().rposition(|p| p.stack == stack);
            i.map(|i| idle.remove(i))
        };
        let Some(p) = parked else { break };
        // Fails only if that thread ended (a panic outside the job's own
        // catch): try the next one.
        match p.tx.send(job) {
            Ok(()) => return Ok(()),
            Err(e) => job = e.into_inner(),
        }
    }
    let mut builder = std::thread::Builder::new().name("aemp-port".into());
    if let Some(s) = stack {
        builder = builder.stack_size(s);
    }
    builder.spawn(move || serve(stack, job)).map(drop)
}

/// A port thread's life: its first job, then whatever comes while it is
/// parked.
fn serve(stack: Option<usize>, first: Job) {
    let mut job = first;
    // A thread port is often followed by the next at once: poll a little
    // before sleeping, as a mailbox does.
    let mut busy = BusyWait::new(crate::busy::DEFAULT_BUSY_WAIT);
    loop {
        job();
        crate::table::forget_last_delivery();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
        {
            let mut idle = IDLE.lock();
            if idle.len() >= MAX_PARKED {
                // Its sender dropped: that thread ends.
                idle.remove(0);
            }
            idle.push(Parked { stack, serial, tx });
        }
        match next_job(&rx, serial, &mut busy) {
            Some(next) => job = next,
            None => return,
        }
    }
}

/// Waits for the next job; `None` after [`IDLE_TIMEOUT`], or when the
/// thread's entry in [`IDLE`] (number `serial`) was dropped: the thread
/// ends.
fn next_job(rx: &Receiver<Job>, serial: u64, busy: &mut BusyWait) -> Option<Job> {
    let start = Instant::now();
    let mut polled = None;
    if busy.spin(start, None, || {
        polled = rx.try_recv().ok();
        polled.is_some()
    }) {
        return polled;
    }
    if let Ok(job) = rx.recv_timeout(IDLE_TIMEOUT) {
        busy.slept(start);
        return Some(job);
    }
    let mut idle = IDLE.lock();
    if let Some(i) = idle.iter().position(|p| p.serial == serial) {
        idle.remove(i);
        return None;
    }
    drop(idle);
    // Taken while the wait timed out: its job is on the way (the taker
    // sends right after taking); or dropped to make room: `recv` fails.
    rx.recv().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// The OS thread a job ran on.
    fn thread_of(stack: Option<usize>) -> std::thread::ThreadId {
        let (tx, rx) = crossbeam_channel::bounded(1);
        run(
            stack,
            Box::new(move || tx.send(std::thread::current().id()).unwrap()),
        )
        .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    /// Waits until a thread of that stack size is parked.
    fn wait_parked(stack: Option<usize>) {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while !IDLE.lock().iter().any(|p| p.stack == stack) {
            assert!(std::time::Instant::now() < end, "no thread parked");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_finished_thread_runs_the_next_job() {
        // A stack size no other test uses: the threads are this test's.
        let stack = Some(1 << 20 | 4096);
        let first = thread_of(stack);
        wait_parked(stack);
        assert_eq!(thread_of(stack), first);
    }

    #[test]
    fn threads_are_reused_only_with_their_stack_size() {
        let (a, b) = (Some(1 << 20 | 8192), Some(1 << 20 | 12288));
        let first = thread_of(a);
        wait_parked(a);
        assert_ne!(thread_of(b), first);
        wait_parked(a);
        assert_eq!(thread_of(a), first);
    }

    #[test]
    fn every_job_runs_under_concurrent_starts() {
        let stack = Some(1 << 20 | 16384);
        let ran = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = crossbeam_channel::unbounded();
        let starters: Vec<_> = (0..4)
            .map(|_| {
                let (ran, tx) = (ran.clone(), tx.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let (ran, tx) = (ran.clone(), tx.clone());
                        let job = move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                            tx.send(()).unwrap();
                        };
                        run(stack, Box::new(job)).unwrap();
                    }
                })
            })
            .collect();
        for s in starters {
            s.join().unwrap();
        }
        for _ in 0..800 {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        assert_eq!(ran.load(Ordering::SeqCst), 800);
    }
}
