//! The parent's handle on one worker process: [`Rpc`], the state it shares
//! with its receiving thread, and making calls. Starting a worker is in
//! `builder.rs` ([`RpcBuilder`]); the receiving thread in `reader.rs`.

mod builder;
mod reader;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use parking_lot::{Condvar, Mutex};

use crate::busy::BusyWait;

use super::serialiser::{Raw, Serialiser};
use super::wire::{self, Outbox};
use super::{Backend, Error, Worker};

pub use builder::RpcBuilder;
use reader::Inbox;

/// How a call ended, as the handle's receiving thread tells it.
pub(crate) enum Answer<V> {
    /// The worker answered, or the call failed (it may have run).
    Done(Result<V, Error>),
    /// The worker died before this call started (a sync worker runs its
    /// calls one at a time, in order: every call after the oldest
    /// unanswered one was still waiting). A pool sends it elsewhere.
    NotStarted(Error),
}

impl<V> Answer<V> {
    /// The result as a caller of a single worker sees it.
    pub(crate) fn result(self) -> Result<V, Error> {
        match self {
            Answer::Done(r) => r,
            Answer::NotStarted(e) => Err(e),
        }
    }
}

pub(crate) type Callback<S> = Box<dyn FnOnce(Answer<<S as Serialiser>::Value>) + Send>;
/// Where one call's events go: told which worker sent them.
pub(crate) type EventSink<V> = Arc<dyn Fn(Origin, V) + Send + Sync>;

/// Which worker sent an event: its process id, and its number in a pool
/// (0 for a worker outside a pool).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    pub(crate) pid: u32,
    pub(crate) worker: u64,
}

/// A call waiting for its answer.
pub(crate) struct Pending<S: Serialiser> {
    pub(crate) cb: Callback<S>,
    pub(crate) events: Option<EventSink<S::Value>>,
}
pub(crate) type ErrorHook = Arc<dyn Fn(&Error) + Send + Sync>;
type EventHook<S> = Arc<dyn Fn(<S as Serialiser>::Value) + Send + Sync>;
pub(crate) type PlainHook = Arc<dyn Fn() + Send + Sync>;
/// Internal: told when the worker is gone (`None` = clean end).
pub(crate) type ExitHook = Box<dyn FnOnce(Option<&Error>) + Send + Sync>;

/// Closes the channel when the last handle goes.
struct Token(Arc<Outbox>, Arc<AtomicBool>);

impl Drop for Token {
    fn drop(&mut self) {
        self.1.store(true, Ordering::SeqCst);
        self.0.close();
    }
}

struct State<S: Serialiser> {
    next_id: u32,
    pending: HashMap<u32, Pending<S>>,
    /// Set once the worker is gone: the error every later call gets.
    dead: Option<Error>,
    /// The reader thread has finished (child reaped, hooks run).
    ended: bool,
}

struct Shared<S: Serialiser> {
    function: String,
    pid: u32,
    ser: S,
    backend: Backend,
    outbox: Arc<Outbox>,
    /// Every user handle is gone.
    dropped: Arc<AtomicBool>,
    st: Mutex<State<S>>,
    ended: Condvar,
    on_error: Option<ErrorHook>,
    on_event: Option<EventHook<S>>,
    on_destroy: Option<PlainHook>,
    on_retire: Option<PlainHook>,
    /// The busy-wait state of callers waiting for an answer
    /// ([`Rpc::call_wait`]).
    waiting: Mutex<BusyWait>,
    /// The channel from the worker, read by the receiving thread or by a
    /// caller waiting for its answer.
    inbox: Mutex<Inbox>,
    /// Callers reading the channel right now (the receiving thread naps).
    readers: AtomicUsize,
    /// Wakes the receiving thread from its nap.
    nap: Condvar,
}

/// A handle on one worker process serving one worker function (the
/// original's AnyEvent::Fork::RPC object).
///
/// Callbacks run on the handle's receiving thread, one at a time, in the
/// order the worker emitted results and events. (While a thread polls for
/// its answer in [`call_wait`](Rpc::call_wait), it reads the channel
/// itself and runs the callbacks of what it reads, one at a time and in
/// order all the same.) Cloning gives another handle
/// on the same worker; when the last handle is dropped, every queued call
/// still runs, then the worker exits and `on_destroy` runs.
///
/// A worker that dies (exit, signal, panic, garbage on the channel) ends
/// every outstanding call with an [`Error`] naming what happened, calls
/// `on_error` once, and is reaped; later calls fail at once with the same
/// error. Nothing waits forever on a dead worker.
pub struct Rpc<S: Serialiser = Raw> {
    shared: Arc<Shared<S>>,
    token: Arc<Token>,
}

impl<S: Serialiser> Clone for Rpc<S> {
    fn clone(&self) -> Self {
        Rpc {
            shared: self.shared.clone(),
            token: self.token.clone(),
        }
    }
}

impl Rpc<Raw> {
    /// Starts configuring a worker running `worker` and serving `function`.
    ///
    /// ```
    /// use aemp::rpc::{self, Raw, Rpc, Worker};
    /// use std::time::Duration;
    /// // Untyped: octets in, octets out (the Raw serialiser).
    /// rpc::register_sync("reverse", Raw, |mut v: Vec<u8>| { v.reverse(); v });
    /// rpc::serve_if_worker()?;
    ///
    /// let rpc = Rpc::builder(Worker::current_exe(), "reverse").spawn()?;
    /// assert_eq!(rpc.function(), "reverse");
    /// assert_eq!(rpc.call_wait(b"abc".to_vec(), Duration::from_secs(5))?, b"cba");
    /// rpc.join(Duration::from_secs(5))?;
    /// # Ok::<(), aemp::rpc::Error>(())
    /// ```
    pub fn builder(worker: Worker, function: &str) -> RpcBuilder<Raw> {
        RpcBuilder::new(worker, function)
    }
}

impl<S: Serialiser> Rpc<S> {
    /// Calls the worker function with `args`; `callback` runs exactly once
    /// with the result or an error. Never blocks: the call is queued and
    /// sent in a batch with others. If the worker is already gone, the
    /// callback runs at once, on this thread.
    ///
    /// ```
    /// use aemp::rpc::{self, Json, Rpc, Worker};
    /// use serde_json::{json, Value};
    /// use std::time::Duration;
    /// rpc::register_sync("double", Json::new(), |v: Value| json!(v.as_i64().unwrap() * 2));
    /// rpc::serve_if_worker()?;
    ///
    /// let rpc = Rpc::builder(Worker::current_exe(), "double").serialiser(Json::new()).spawn()?;
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// for i in 1..=3 {
    ///     let tx = tx.clone();
    ///     rpc.call(json!(i), move |r| tx.send(r.unwrap()).unwrap()); // never blocks
    /// }
    /// let t = Duration::from_secs(5);
    /// let got: Vec<Value> = (0..3).map(|_| rx.recv_timeout(t).unwrap()).collect();
    /// assert_eq!(got, [json!(2), json!(4), json!(6)]); // sync backend: in call order
    /// rpc.join(t)?;
    /// # Ok::<(), aemp::rpc::Error>(())
    /// ```
    pub fn call(
        &self,
        args: S::Value,
        callback: impl FnOnce(Result<S::Value, Error>) + Send + 'static,
    ) {
        let p = Pending {
            cb: Box::new(move |a: Answer<S::Value>| callback(a.result())),
            events: None,
        };
        self.call_pending(&args, p, false);
    }

    /// Encodes `args`, then sends the call; an encoding error or a dead
    /// worker fails it at once.
    pub(crate) fn call_pending(&self, args: &S::Value, p: Pending<S>, flush: bool) {
        let sent = match encode_call(&self.shared.ser, args) {
            Ok(frame) => self.send_call(frame, p, flush),
            Err(e) => Err((p, e)),
        };
        if let Err((p, e)) = sent {
            (p.cb)(Answer::Done(Err(e)));
        }
    }

    /// Calls and waits for the result, at most `timeout`. On a time-out the
    /// call stays queued; its result is dropped when it comes.
    ///
    /// The caller polls for the result for a short while before it sleeps
    /// (the busy-wait of [`Config::busy_wait`](crate::Config::busy_wait),
    /// with its default budget), reading the worker's channel itself if
    /// the receiving thread is not: a quick call's round trip then wakes
    /// no sleeping thread in the parent.
    pub fn call_wait(&self, args: S::Value, timeout: Duration) -> Result<S::Value, Error> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let p = Pending {
            cb: Box::new(move |a: Answer<S::Value>| {
                let _ = tx.send(a.result());
            }),
            events: None,
        };
        self.call_pending(&args, p, true);
        self.await_answer(&rx, timeout).unwrap_or_else(|| {
            Err(Error::Timeout {
                what: format!("worker {} (pid {})", self.shared.function, self.shared.pid),
                ms: timeout.as_millis(),
            })
        })
    }

    /// The answer on `rx`, waiting at most `timeout`: polls first (see
    /// [`crate::busy`]), since in a round trip the answer comes within
    /// microseconds and waking a sleeping caller costs more than that. One
    /// waiting caller of the handle at a time polls; the others sleep.
    ///
    /// While it polls, the caller reads the channel itself (when the
    /// receiving thread is not reading it) and handles the frames it finds,
    /// its answer among them: one thread fewer to wake per round trip.
    pub(crate) fn await_answer<T>(&self, rx: &Receiver<T>, timeout: Duration) -> Option<T> {
        let sh = &*self.shared;
        let Some(mut busy) = sh.waiting.try_lock() else {
            return rx.recv_timeout(timeout).ok();
        };
        let start = Instant::now();
        let mut got = None;
        sh.readers.fetch_add(1, Ordering::SeqCst);
        let polled = busy.spin(start, start.checked_add(timeout), || {
            if let Some(mut inbox) = sh.inbox.try_lock() {
                sh.read_ready(&mut inbox);
            }
            got = rx.try_recv().ok();
            got.is_some()
        });
        sh.readers.fetch_sub(1, Ordering::SeqCst);
        if polled {
            // Answers to other calls are the receiving thread's again.
            if !sh.st.lock().pending.is_empty() {
                sh.nap.notify_one();
            }
            return got;
        }
        sh.nap.notify_one();
        let got = rx
            .recv_timeout(timeout.saturating_sub(start.elapsed()))
            .ok();
        if got.is_some() {
            busy.slept(start);
        }
        got
    }

    /// Sends an encoded call frame (from [`encode_call`]). Hands the call
    /// back, uncalled, when the worker is already gone, so a pool can send
    /// it elsewhere. `flush`: the caller will wait for the answer; the
    /// frame is written at once, from this thread, and its id marked
    /// [`wire::WAITED`] (the worker then polls for its next call).
    pub(crate) fn send_call(
        &self,
        mut frame: Vec<u8>,
        p: Pending<S>,
        flush: bool,
    ) -> Result<(), (Pending<S>, Error)> {
        let sh = &*self.shared;
        let mut st = sh.st.lock();
        if let Some(e) = &st.dead {
            let e = e.clone();
            drop(st);
            return Err((p, e));
        }
        let id = free_id(st.next_id, |id| st.pending.contains_key(&id));
        st.next_id = id + 1;
        wire::set_id(&mut frame, if flush { id | wire::WAITED } else { id });
        st.pending.insert(id, p);
        // Pushed under the state lock so the worker sees calls in id order.
        if !sh.outbox.push(frame, !flush) {
            // Channel already broken: the reader thread will fail this call.
            log::debug!("rpc: call to {} after its channel broke", sh.function);
        }
        drop(st);
        if flush {
            sh.outbox.flush_now();
        } else {
            // The receiving thread may nap after a `call_wait` read the
            // channel (no waiter: no system call).
            sh.nap.notify_one();
        }
        Ok(())
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    /// The worker function this handle calls.
    pub fn function(&self) -> &str {
        &self.shared.function
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.shared.backend
    }

    /// How many calls are waiting for an answer.
    pub fn pending(&self) -> usize {
        self.shared.st.lock().pending.len()
    }

    /// The error that ended the worker, if it has ended.
    ///
    /// ```
    /// use aemp::rpc::{self, Raw, Rpc, Worker};
    /// use std::time::Duration;
    /// rpc::register_sync("crash", Raw, |_| std::process::exit(3));
    /// rpc::serve_if_worker()?;
    ///
    /// let rpc = Rpc::builder(Worker::current_exe(), "crash").spawn()?;
    /// assert!(rpc.error().is_none());
    /// let err = rpc.call_wait(vec![], Duration::from_secs(5)).unwrap_err();
    /// assert!(matches!(err, rpc::Error::WorkerDied { .. }), "{err}");
    /// assert!(rpc.error().is_some()); // and later calls fail at once
    /// assert!(rpc.call_wait(vec![], Duration::from_secs(5)).is_err());
    /// # Ok::<(), aemp::rpc::Error>(())
    /// ```
    pub fn error(&self) -> Option<Error> {
        self.shared.st.lock().dead.clone()
    }

    /// Drops this handle and waits, at most `timeout`, until the worker has
    /// answered everything, exited and been reaped (after `on_destroy` or
    /// `on_error` ran). Other clones of the handle keep the worker running
    /// until they are dropped too. Returns the error that ended the worker,
    /// if it did not end cleanly. Do not call it from one of this worker's
    /// own callbacks (they run on the thread it waits for).
    pub fn join(self, timeout: Duration) -> Result<(), Error> {
        let shared = self.shared.clone();
        drop(self);
        let deadline = Instant::now() + timeout;
        let mut st = shared.st.lock();
        while !st.ended {
            if shared.ended.wait_until(&mut st, deadline).timed_out() {
                return Err(Error::Timeout {
                    what: format!("worker {} (pid {}) to exit", shared.function, shared.pid),
                    ms: timeout.as_millis(),
                });
            }
        }
        match &st.dead {
            Some(Error::Closed { .. }) | None => Ok(()),
            Some(e) => Err(e.clone()),
        }
    }
}

/// Runs a user callback, logging (not propagating) a panic so the receiving
/// thread keeps serving.
fn guarded(what: &str, f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        log::error!("rpc: {what} callback panicked: {msg}");
    }
}

/// Hands an error to `on_error`, or logs it when there is none.
fn report(on_error: &Option<ErrorHook>, e: &Error) {
    match on_error {
        Some(f) => guarded("on_error", || f(e)),
        None => log::error!("rpc: {e}"),
    }
}

impl<S: Serialiser> Shared<S> {
    fn report(&self, e: &Error) {
        report(&self.on_error, e);
    }

    fn take_pending(&self, id: u32) -> Option<Pending<S>> {
        self.st.lock().pending.remove(&id)
    }
}

/// The first id from `next` on that is not `taken`: never 0, and always
/// below [`wire::WAITED`], the bit that marks a call whose caller waits
/// (an answer's id comes back without it).
fn free_id(next: u32, taken: impl Fn(u32) -> bool) -> u32 {
    let mut id = next & !wire::WAITED;
    while id == 0 || taken(id) {
        id = (id + 1) & !wire::WAITED;
    }
    id
}

/// The call frame carrying `args` (its id is set when it is sent).
pub(crate) fn encode_call<S: Serialiser>(ser: &S, args: &S::Value) -> Result<Vec<u8>, Error> {
    let mut frame = wire::frame_start(64);
    ser.encode(args, &mut frame).map_err(|e| match e {
        Error::Encode {
            serialiser,
            message,
            ..
        } => Error::Encode {
            serialiser,
            what: "arguments",
            message,
        },
        e => e,
    })?;
    wire::frame_finish(&mut frame, wire::CALL, 0, "arguments")?;
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_skip_zero_the_taken_and_the_waited_bit() {
        assert_eq!(free_id(1, |_| false), 1);
        assert_eq!(free_id(0, |_| false), 1);
        assert_eq!(free_id(5, |id| id < 8), 8);
        // At the top of the range it wraps below the bit, past 0.
        assert_eq!(free_id(wire::WAITED - 1, |_| false), wire::WAITED - 1);
        assert_eq!(free_id(wire::WAITED, |_| false), 1);
        assert_eq!(free_id(wire::WAITED - 1, |id| id > 2), 1);
        assert_eq!(free_id(u32::MAX, |_| false), wire::WAITED - 1);
        assert_eq!(free_id(u32::MAX, |id| id != 2), 2);
    }
}
