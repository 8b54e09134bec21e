//! A self-sizing pool of workers (the original's AnyEvent::Fork::Pool):
//! [`Pool`], its builder, and handing jobs to workers. The thread that
//! starts and stops workers is in `manager.rs`.

mod manager;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::handle::{encode_call, Answer, EventSink, Origin, Pending, PlainHook};
use super::serialiser::{Raw, Serialiser};
use super::{Backend, Error, Rpc, RpcBuilder, Worker};
use manager::Manager;

/// Options for a [`Pool`]; made by [`Pool::builder`].
///
/// ```
/// use aemp::rpc::{self, Json, Pool, Worker};
/// use serde_json::{json, Value};
/// use std::time::Duration;
/// // The worker side (this program, re-run): first in main.
/// rpc::register_sync("square", Json::new(), |v: Value| json!(v.as_i64().unwrap().pow(2)));
/// rpc::serve_if_worker()?;
///
/// let pool = Pool::builder(Worker::current_exe(), "square")
///     .serialiser(Json::new())
///     .max(4)                              // at most 4 workers
///     .idle(1)                             // keep one idle worker around
///     .load(2)                             // 2 concurrent calls per worker
///     .start(Duration::from_millis(100))   // at most one new worker per 100 ms
///     .stop(Duration::from_secs(10))       // stop workers idle for 10 s
///     .on_destroy(|| eprintln!("pool finished"))
///     .build()?;
/// let (tx, rx) = crossbeam_channel::unbounded();
/// for i in 0..100 {
///     let tx = tx.clone();
///     pool.call(json!(i), move |r| tx.send(r.unwrap().as_i64().unwrap()).unwrap());
/// }
/// pool.join(Duration::from_secs(60))?; // finish the queue, stop all workers
/// assert_eq!(rx.try_iter().sum::<i64>(), (0..100i64).map(|i| i * i).sum::<i64>());
/// # Ok::<(), aemp::rpc::Error>(())
/// ```
pub struct PoolBuilder<S: Serialiser = Raw> {
    rpc: RpcBuilder<S>,
    max: usize,
    idle: usize,
    load: usize,
    start: Duration,
    stop: Duration,
    on_destroy: Option<PlainHook>,
}

impl<S: Serialiser> PoolBuilder<S> {
    /// Chooses the serialiser (default [`Raw`]). Resets `on_event`.
    pub fn serialiser<T: Serialiser>(self, ser: T) -> PoolBuilder<T> {
        PoolBuilder {
            rpc: self.rpc.serialiser(ser),
            max: self.max,
            idle: self.idle,
            load: self.load,
            start: self.start,
            stop: self.stop,
            on_destroy: self.on_destroy,
        }
    }

    /// The backend of every worker (default [`Backend::Sync`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.rpc = self.rpc.backend(backend);
        self
    }

    /// An init function run first in every worker, with these arguments.
    pub fn init(mut self, function: &str, args: Vec<Vec<u8>>) -> Self {
        self.rpc = self.rpc.init(function, args);
        self
    }

    /// Async backend: the done function of every worker.
    pub fn done(mut self, function: &str) -> Self {
        self.rpc = self.rpc.done(function);
        self
    }

    /// Called once for each worker that dies or misbehaves (the pool
    /// replaces it), with the error its in-flight calls got, and when a
    /// worker cannot be started.
    pub fn on_error(mut self, f: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.rpc = self.rpc.on_error(f);
        self
    }

    /// Called for worker events (they name neither call nor worker here;
    /// a [`TypedPool`](super::TypedPool)'s do). Unlike a single [`Rpc`], a
    /// pool ignores events when this is not set.
    pub fn on_event(mut self, f: impl Fn(S::Value) + Send + Sync + 'static) -> Self {
        self.rpc = self.rpc.on_event(f);
        self
    }

    /// Called once after the pool is dropped, every job is done and every
    /// worker has exited.
    pub fn on_destroy(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_destroy = Some(Arc::new(f));
        self
    }

    /// The most workers at once (default: [`ncpu`](super::ncpu), the CPUs
    /// the process may use, from [`std::thread::available_parallelism`]).
    /// At least 1.
    pub fn max(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// The least number of idle workers kept around, also the number started
    /// at once (default 0).
    pub fn idle(mut self, idle: usize) -> Self {
        self.idle = idle;
        self
    }

    /// The most concurrent calls per worker (default 2). At least 1.
    pub fn load(mut self, load: usize) -> Self {
        self.load = load;
        self
    }

    /// The least time between starting two workers (default 0.1 s).
    pub fn start(mut self, gap: Duration) -> Self {
        self.start = gap;
        self
    }

    /// How long a worker beyond `idle` may be idle before it is stopped
    /// (default 10 s).
    pub fn stop(mut self, idle_time: Duration) -> Self {
        self.stop = idle_time;
        self
    }

    /// Creates the pool and starts its `idle` workers. Workers are started
    /// in the background; calls queue until one is ready.
    pub fn build(self) -> Result<Pool<S>, Error> {
        if self.max == 0 {
            return Err(Error::Option {
                option: "max",
                message: "a pool needs at least one worker".into(),
            });
        }
        if self.load == 0 {
            return Err(Error::Option {
                option: "load",
                message: "a worker must take at least one call".into(),
            });
        }
        let mut rpc = self.rpc;
        // A worker holding several calls must send each result before it
        // starts the next, so that the pool knows which call was running
        // when it dies (see `requeue`).
        rpc.flush_results = self.load > 1;
        rpc.poll = false;
        if !rpc.has_on_event() {
            rpc = rpc.on_event(|_| {});
        }
        let inner = Arc::new(Inner {
            template: rpc,
            max: self.max,
            idle: self.idle.min(self.max),
            load: self.load,
            start: self.start,
            stop: self.stop,
            on_destroy: self.on_destroy,
            st: Mutex::new(PoolState {
                slots: Vec::new(),
                queue: VecDeque::new(),
                starting: 0,
                alive: 0,
                in_callbacks: 0,
                closing: false,
                finished: false,
                last_start: None,
                next_slot: 0,
                next_seq: 0,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
        });
        // Start the `idle` workers now, so they exist when build returns.
        for _ in 0..inner.idle {
            inner.st.lock().starting += 1;
            inner.start_worker()?;
        }
        if inner.idle > 0 {
            inner.st.lock().last_start = Some(Instant::now());
        }
        let manager = inner.clone();
        std::thread::Builder::new()
            .name("aemp-rpc-pool".into())
            .spawn(move || Manager::run(manager))
            .map_err(|e| Error::Io {
                function: inner.template.function_name().to_string(),
                pid: std::process::id(),
                message: format!("cannot start the pool thread: {e}"),
            })?;
        Ok(Pool {
            token: Arc::new(PoolToken(inner.clone())),
            inner,
        })
    }
}

struct Slot<S: Serialiser> {
    id: u64,
    rpc: Rpc<S>,
    load: usize,
    retired: bool,
    idle_since: Instant,
}

/// The user's callback for one pool call.
pub(crate) type JobCallback<S> = Box<dyn FnOnce(Result<<S as Serialiser>::Value, Error>) + Send>;

/// A call waiting in the queue, or given to a worker.
pub(crate) struct Job<S: Serialiser> {
    /// Order of the calls: a job sent back to the queue goes before the
    /// jobs made after it.
    seq: u64,
    args: S::Value,
    cb: JobCallback<S>,
    events: Option<EventSink<S::Value>>,
}

struct PoolState<S: Serialiser> {
    slots: Vec<Slot<S>>,
    queue: VecDeque<Job<S>>,
    /// Workers being started by the manager.
    starting: usize,
    /// Worker processes not yet reaped.
    alive: usize,
    /// User callbacks running right now (the pool is not finished before
    /// they return).
    in_callbacks: usize,
    closing: bool,
    finished: bool,
    last_start: Option<Instant>,
    next_slot: u64,
    next_seq: u64,
}

struct Inner<S: Serialiser> {
    template: RpcBuilder<S>,
    max: usize,
    idle: usize,
    load: usize,
    start: Duration,
    stop: Duration,
    on_destroy: Option<PlainHook>,
    st: Mutex<PoolState<S>>,
    /// Wakes the manager thread.
    wake: Condvar,
    /// Signals `finished`.
    done: Condvar,
}

/// Marks the pool closing when the last handle goes.
struct PoolToken<S: Serialiser>(Arc<Inner<S>>);

impl<S: Serialiser> Drop for PoolToken<S> {
    fn drop(&mut self) {
        self.0.st.lock().closing = true;
        self.0.wake.notify_all();
    }
}

/// A self-sizing pool of workers serving one worker function (the
/// original's AnyEvent::Fork::Pool).
///
/// A call goes to the least-loaded worker whose load is below `load`;
/// otherwise it waits in a FIFO queue, and the pool starts another worker
/// (at most `max`, at most one per `start` gap). Workers idle for `stop`
/// beyond the `idle` minimum are stopped. A worker may [`retire`](super::retire)
/// itself. A worker that dies is replaced: the call it was running fails,
/// with the error naming what happened; with the sync backend, the calls
/// waiting behind it on that worker (`load` above 1) never started, and go
/// to another worker (see [the rule](super#failure)). Dropping the last
/// handle finishes every queued call, then stops all workers and runs
/// `on_destroy`.
///
/// Callbacks run on the worker's receiving thread; they may call the pool.
///
/// ```
/// use aemp::rpc::{self, Pool, Raw, Worker};
/// use std::time::Duration;
/// // Each worker answers with its pid and retires after its first call.
/// rpc::register_sync("once", Raw, |_| {
///     rpc::retire().unwrap();
///     std::process::id().to_string().into_bytes()
/// });
/// rpc::serve_if_worker()?;
///
/// let pool = Pool::builder(Worker::current_exe(), "once").max(1).build()?;
/// let t = Duration::from_secs(10);
/// let first = pool.call_wait(vec![], t)?;
/// let second = pool.call_wait(vec![], t)?;
/// assert_ne!(first, second); // the retired worker was replaced
/// pool.join(t)?;
/// # Ok::<(), aemp::rpc::Error>(())
/// ```
pub struct Pool<S: Serialiser = Raw> {
    inner: Arc<Inner<S>>,
    token: Arc<PoolToken<S>>,
}

impl<S: Serialiser> Clone for Pool<S> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
            token: self.token.clone(),
        }
    }
}

impl Pool<Raw> {
    /// Starts configuring a pool of `worker` processes serving `function`.
    ///
    /// ```
    /// use aemp::rpc::{self, Json, Pool, Worker};
    /// use serde_json::{json, Value};
    /// use std::time::Duration;
    /// rpc::register_sync("square", Json::new(), |v: Value| json!(v.as_i64().unwrap().pow(2)));
    /// rpc::serve_if_worker()?;
    ///
    /// let pool = Pool::builder(Worker::current_exe(), "square").serialiser(Json::new()).max(2).build()?;
    /// assert_eq!(pool.max(), 2);
    /// assert_eq!(pool.call_wait(json!(7), Duration::from_secs(10))?, json!(49));
    /// assert!(pool.workers() >= 1 && pool.pids().len() >= 1);
    /// pool.join(Duration::from_secs(10))?;
    /// # Ok::<(), aemp::rpc::Error>(())
    /// ```
    pub fn builder(worker: Worker, function: &str) -> PoolBuilder<Raw> {
        PoolBuilder {
            rpc: Rpc::builder(worker, function),
            max: super::ncpu(1),
            idle: 0,
            load: 2,
            start: Duration::from_millis(100),
            stop: Duration::from_secs(10),
            on_destroy: None,
        }
    }
}

impl<S: Serialiser> Pool<S> {
    /// Queues a call; `callback` runs exactly once with its result.
    pub fn call(
        &self,
        args: S::Value,
        callback: impl FnOnce(Result<S::Value, Error>) + Send + 'static,
    ) {
        self.call_job(args, Box::new(callback), None, false);
    }

    /// Queues a call whose events go to `events`. For a caller that will
    /// wait for the answer (`waiting`), the call is written at once if a
    /// worker takes it now, and that worker's handle comes back for
    /// [`Pool::await_job`].
    pub(crate) fn call_job(
        &self,
        args: S::Value,
        cb: JobCallback<S>,
        events: Option<EventSink<S::Value>>,
        waiting: bool,
    ) -> Option<Rpc<S>> {
        let inner = &self.inner;
        let mut st = inner.st.lock();
        st.next_seq += 1;
        let seq = st.next_seq;
        st.queue.push_back(Job {
            seq,
            args,
            cb,
            events,
        });
        let work = inner.dispatch(&mut st);
        let more = !st.queue.is_empty();
        drop(st);
        let sent_to = inner.run(work, waiting.then_some(seq));
        if more {
            inner.wake.notify_all();
        }
        sent_to
    }

    /// The answer of a job on `rx`, waiting at most `timeout`. When the job
    /// went to a worker at once (`sent_to`), the caller polls for it first
    /// and reads that worker's channel itself, as [`Rpc::call_wait`] does;
    /// otherwise (all workers at their load) it sleeps until the answer.
    /// If the worker dies before it starts the job, the job runs elsewhere
    /// and its answer still comes on `rx`.
    pub(crate) fn await_job<T>(
        sent_to: Option<Rpc<S>>,
        rx: &crossbeam_channel::Receiver<T>,
        timeout: Duration,
    ) -> Option<T> {
        match sent_to {
            Some(rpc) => rpc.await_answer(rx, timeout),
            None => rx.recv_timeout(timeout).ok(),
        }
    }

    /// Calls and waits for the result, at most `timeout`.
    ///
    /// When a worker takes the call at once, the caller polls for the
    /// answer for a short while, reading the worker's channel itself (as
    /// [`Rpc::call_wait`] does), and the worker polls for its next call
    /// after this one: a quick call's round trip then wakes no sleeping
    /// thread. When all workers are at their load, it sleeps until the
    /// answer.
    pub fn call_wait(&self, args: S::Value, timeout: Duration) -> Result<S::Value, Error> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let cb = Box::new(move |r| {
            let _ = tx.send(r);
        });
        let sent_to = self.call_job(args, cb, None, true);
        Self::await_job(sent_to, &rx, timeout).unwrap_or_else(|| {
            Err(Error::Timeout {
                what: format!("pool of {}", self.inner.template.function_name()),
                ms: timeout.as_millis(),
            })
        })
    }

    /// The process ids of the current workers (retired ones included until
    /// they exit).
    pub fn pids(&self) -> Vec<u32> {
        self.inner
            .st
            .lock()
            .slots
            .iter()
            .map(|s| s.rpc.pid())
            .collect()
    }

    /// The most workers the pool runs at once.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// How many workers the pool has now (not counting ones being started).
    pub fn workers(&self) -> usize {
        self.inner.st.lock().slots.len()
    }

    /// How many calls wait in the queue (not yet given to a worker).
    pub fn queued(&self) -> usize {
        self.inner.st.lock().queue.len()
    }

    /// Drops this handle and waits, at most `timeout`, until the pool has
    /// finished every call, every worker has exited and `on_destroy` ran
    /// (when this was the last handle).
    pub fn join(self, timeout: Duration) -> Result<(), Error> {
        let inner = self.inner.clone();
        drop(self);
        let deadline = Instant::now() + timeout;
        let mut st = inner.st.lock();
        while !st.finished {
            if inner.done.wait_until(&mut st, deadline).timed_out() {
                return Err(Error::Timeout {
                    what: format!("pool of {} to finish", inner.template.function_name()),
                    ms: timeout.as_millis(),
                });
            }
        }
        Ok(())
    }
}

/// A job handed to a worker, executed outside the pool lock.
struct Dispatch<S: Serialiser> {
    slot: u64,
    rpc: Rpc<S>,
    job: Job<S>,
}

impl<S: Serialiser> Inner<S> {
    /// Assigns queued jobs (FIFO) to the least-loaded workers below `load`.
    fn dispatch(&self, st: &mut PoolState<S>) -> Vec<Dispatch<S>> {
        let mut work = Vec::new();
        while !st.queue.is_empty() {
            let best = st
                .slots
                .iter_mut()
                .filter(|s| !s.retired && s.load < self.load)
                .min_by_key(|s| s.load);
            let Some(slot) = best else { break };
            slot.load += 1;
            let job = st.queue.pop_front().expect("queue is not empty");
            work.push(Dispatch {
                slot: slot.id,
                rpc: slot.rpc.clone(),
                job,
            });
        }
        work
    }

    /// Sends dispatched jobs to their workers. A job whose worker turned out
    /// to be dead goes back to the queue. The job numbered `waited` (whose
    /// caller waits for it) is written at once, and its worker's handle
    /// returned.
    fn run(self: &Arc<Self>, work: Vec<Dispatch<S>>, waited: Option<u64>) -> Option<Rpc<S>> {
        let mut sent_to = None;
        for Dispatch { slot, rpc, job } in work {
            let own = waited == Some(job.seq);
            let frame = match encode_call(self.template.ser(), &job.args) {
                Ok(frame) => frame,
                Err(e) => {
                    self.finished_job(slot, job.cb, Err(e));
                    continue;
                }
            };
            let events = job.events.clone().map(|sink| {
                let tagged: EventSink<S::Value> =
                    Arc::new(move |o: Origin, v| sink(Origin { worker: slot, ..o }, v));
                tagged
            });
            // The job waits in a cell until its answer, so that it can go
            // back to the queue (its callback uncalled) if the worker dies
            // before it starts.
            let cell = Arc::new(Mutex::new(Some(job)));
            let (me, inner_cell) = (self.clone(), cell.clone());
            let pending = Pending {
                cb: Box::new(move |a: Answer<S::Value>| {
                    let Some(job) = inner_cell.lock().take() else {
                        return;
                    };
                    match a {
                        Answer::Done(r) => me.finished_job(slot, job.cb, r),
                        Answer::NotStarted(_) => me.requeue(slot, job),
                    }
                }),
                events,
            };
            match rpc.send_call(frame, pending, own) {
                Ok(()) if own => sent_to = Some(rpc),
                Ok(()) => {}
                Err((pending, _)) => {
                    drop(pending);
                    if let Some(job) = cell.lock().take() {
                        self.requeue(slot, job);
                    }
                }
            }
        }
        sent_to
    }

    /// A job that never started on worker `slot` (it is dead) goes back to
    /// the queue, before the jobs made after it, for another worker.
    fn requeue(self: &Arc<Self>, slot: u64, job: Job<S>) {
        let mut st = self.st.lock();
        if let Some(s) = st.slots.iter_mut().find(|s| s.id == slot) {
            s.load -= 1;
            s.retired = true; // dead: never pick it again
        }
        let at = st.queue.partition_point(|j| j.seq < job.seq);
        st.queue.insert(at, job);
        let work = self.dispatch(&mut st);
        drop(st);
        self.wake.notify_all();
        self.run(work, None);
    }

    /// A worker answered: account, run the user's callback, dispatch more.
    fn finished_job(self: &Arc<Self>, slot: u64, cb: JobCallback<S>, r: Result<S::Value, Error>) {
        let became_idle = {
            let mut st = self.st.lock();
            st.in_callbacks += 1;
            let many = st.slots.len() > self.idle;
            match st.slots.iter_mut().find(|s| s.id == slot) {
                Some(s) => {
                    s.load -= 1;
                    if s.load == 0 {
                        s.idle_since = Instant::now();
                    }
                    s.load == 0 && many
                }
                None => false,
            }
        };
        if became_idle {
            // The manager may have to stop it after `stop`.
            self.wake.notify_all();
        }
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(r))).is_err() {
            log::error!("rpc pool: a result callback panicked");
        }
        let mut st = self.st.lock();
        st.in_callbacks -= 1;
        let work = self.dispatch(&mut st);
        let notify =
            st.closing || !st.queue.is_empty() || st.slots.iter().any(|s| s.retired && s.load == 0);
        drop(st);
        self.run(work, None);
        if notify {
            self.wake.notify_all();
        }
    }

    /// Starts one worker (the caller has counted it in `starting`).
    fn start_worker(self: &Arc<Self>) -> Result<(), Error> {
        let id = {
            let mut st = self.st.lock();
            st.next_slot += 1;
            st.next_slot
        };
        let mut b = self.template.template();
        let me = Arc::downgrade(self);
        b.on_retire = Some(Arc::new(move || {
            if let Some(me) = me.upgrade() {
                let mut st = me.st.lock();
                if let Some(s) = st.slots.iter_mut().find(|s| s.id == id) {
                    s.retired = true;
                }
                drop(st);
                me.wake.notify_all();
            }
        }));
        let me = Arc::downgrade(self);
        b.on_exit = Some(Box::new(move |_err: Option<&Error>| {
            if let Some(me) = me.upgrade() {
                let mut st = me.st.lock();
                st.slots.retain(|s| s.id != id);
                st.alive -= 1;
                drop(st);
                me.wake.notify_all();
            }
        }));
        let spawned = b.spawn();
        let mut st = self.st.lock();
        st.starting -= 1;
        match spawned {
            Ok(rpc) => {
                st.alive += 1;
                st.slots.push(Slot {
                    id,
                    rpc,
                    load: 0,
                    retired: false,
                    idle_since: Instant::now(),
                });
                let work = self.dispatch(&mut st);
                drop(st);
                self.run(work, None);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
