//! The parent's handle on one worker process: [`Rpc`] and its builder.

use std::collections::HashMap;
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::serialiser::{Raw, Serialiser, Strings};
use super::wire::{self, Outbox};
use super::{Backend, Error, Worker};

pub(crate) type Callback<S> = Box<dyn FnOnce(Result<<S as Serialiser>::Value, Error>) + Send>;
pub(crate) type ErrorHook = Arc<dyn Fn(&Error) + Send + Sync>;
type EventHook<S> = Arc<dyn Fn(<S as Serialiser>::Value) + Send + Sync>;
pub(crate) type PlainHook = Arc<dyn Fn() + Send + Sync>;
/// Internal: told when the worker is gone (`None` = clean end).
pub(crate) type ExitHook = Box<dyn FnOnce(Option<&Error>) + Send + Sync>;

/// Options for starting one worker; made by [`Rpc::builder`].
///
/// ```no_run
/// use aemp::rpc::{Backend, Json, Rpc, Worker};
/// use serde_json::json;
/// let rpc = Rpc::builder(Worker::current_exe(), "add")
///     .serialiser(Json::new())
///     .backend(Backend::Sync)
///     .init("setup", vec![b"verbose".to_vec()])
///     .on_event(|ev| eprintln!("progress: {ev}"))
///     .on_error(|e| eprintln!("worker failed: {e}"))
///     .on_destroy(|| eprintln!("worker finished"))
///     .spawn()?;
/// rpc.call(json!([1, 2]), |r| println!("1 + 2 = {}", r.unwrap()));
/// assert_eq!(rpc.call_wait(json!([2, 2]), std::time::Duration::from_secs(5))?, json!(4));
/// # Ok::<(), aemp::rpc::Error>(())
/// ```
pub struct RpcBuilder<S: Serialiser = Raw> {
    worker: Worker,
    function: String,
    ser: S,
    backend: Backend,
    init: Option<(String, Vec<Vec<u8>>)>,
    done: Option<String>,
    on_error: Option<ErrorHook>,
    on_event: Option<EventHook<S>>,
    on_destroy: Option<PlainHook>,
    pub(crate) on_retire: Option<PlainHook>,
    pub(crate) on_exit: Option<ExitHook>,
}

impl RpcBuilder<Raw> {
    pub(crate) fn new(worker: Worker, function: &str) -> Self {
        RpcBuilder {
            worker,
            function: function.to_string(),
            ser: Raw,
            backend: Backend::Sync,
            init: None,
            done: None,
            on_error: None,
            on_event: None,
            on_destroy: None,
            on_retire: None,
            on_exit: None,
        }
    }
}

impl<S: Serialiser> RpcBuilder<S> {
    /// Chooses the serialiser (default [`Raw`]); it must match the one the
    /// worker function was registered with. Resets `on_event`.
    pub fn serialiser<T: Serialiser>(self, ser: T) -> RpcBuilder<T> {
        RpcBuilder {
            worker: self.worker,
            function: self.function,
            ser,
            backend: self.backend,
            init: self.init,
            done: self.done,
            on_error: self.on_error,
            on_event: None,
            on_destroy: self.on_destroy,
            on_retire: self.on_retire,
            on_exit: self.on_exit,
        }
    }

    /// Chooses the backend (default [`Backend::Sync`]); it must match how
    /// the worker function was registered.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Names an init function (see [`register_init`](super::register_init))
    /// that the worker runs first, with these arguments in order.
    pub fn init(mut self, function: &str, args: Vec<Vec<u8>>) -> Self {
        self.init = Some((function.to_string(), args));
        self
    }

    /// Async backend: names a done function (see
    /// [`register_done`](super::register_done)) the worker runs after the
    /// handle is dropped and every call is answered; it exits when that
    /// function returns.
    pub fn done(mut self, function: &str) -> Self {
        self.done = Some(function.to_string());
        self
    }

    /// Called once when the worker dies or misbehaves (after every
    /// outstanding call got its error), and for events without an
    /// `on_event` handler. Without it, errors are logged.
    pub fn on_error(mut self, f: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(f));
        self
    }

    /// Called for each event the worker emits, in emission order relative to
    /// results.
    pub fn on_event(mut self, f: impl Fn(S::Value) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }

    /// Called once after every handle is dropped, every call is answered and
    /// the worker has exited cleanly.
    pub fn on_destroy(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_destroy = Some(Arc::new(f));
        self
    }

    /// A copy of these options without the internal hooks (for pools).
    pub(crate) fn template(&self) -> RpcBuilder<S> {
        RpcBuilder {
            worker: self.worker.clone(),
            function: self.function.clone(),
            ser: self.ser.clone(),
            backend: self.backend,
            init: self.init.clone(),
            done: self.done.clone(),
            on_error: self.on_error.clone(),
            on_event: self.on_event.clone(),
            on_destroy: self.on_destroy.clone(),
            on_retire: None,
            on_exit: None,
        }
    }

    /// Hands an error to `on_error`, or logs it when there is none.
    pub(crate) fn report(&self, e: &Error) {
        match &self.on_error {
            Some(f) => guarded("on_error", || f(e)),
            None => log::error!("rpc: {e}"),
        }
    }

    /// Whether an `on_event` handler is set.
    pub(crate) fn has_on_event(&self) -> bool {
        self.on_event.is_some()
    }

    /// The worker function's name.
    pub(crate) fn function_name(&self) -> &str {
        &self.function
    }

    /// Starts the worker process. Calls may be made at once; they queue
    /// until the worker reads them.
    pub fn spawn(self) -> Result<Rpc<S>, Error> {
        let (child, sock) = self.worker.spawn()?;
        let pid = child.id();
        let function = self.function.clone();
        let io_err = |e: std::io::Error| Error::Io {
            function: function.clone(),
            pid,
            message: e.to_string(),
        };
        let spawned = (|| {
            let read_half = sock.try_clone()?;
            let outbox = Outbox::start(sock, "aemp-rpc-send")?;
            Ok::<_, std::io::Error>((read_half, outbox))
        })();
        let (read_half, outbox) = match spawned {
            Ok(x) => x,
            Err(e) => {
                reap(child, Duration::ZERO);
                return Err(io_err(e));
            }
        };
        let (init, init_args) = self.init.unwrap_or_default();
        let mut params: Vec<Vec<u8>> = vec![
            wire::MAGIC.to_vec(),
            self.function.clone().into_bytes(),
            self.ser.name().as_bytes().to_vec(),
            match self.backend {
                Backend::Sync => b"sync".to_vec(),
                Backend::Async => b"async".to_vec(),
            },
            init.into_bytes(),
            self.done.unwrap_or_default().into_bytes(),
        ];
        params.extend(init_args);
        let mut start = wire::frame_start(256);
        Strings::pack(&params, &mut start);
        wire::frame_finish(&mut start, wire::START, 0, "init arguments")?;
        outbox.push(start, true);

        let shared = Arc::new(Shared {
            function: self.function,
            pid,
            ser: self.ser,
            backend: self.backend,
            outbox,
            dropped: Arc::new(AtomicBool::new(false)),
            st: Mutex::new(State {
                next_id: 1,
                pending: HashMap::new(),
                dead: None,
                ended: false,
            }),
            ended: Condvar::new(),
            on_error: self.on_error,
            on_event: self.on_event,
            on_destroy: self.on_destroy,
            on_retire: self.on_retire,
        });
        let token = Arc::new(Token(shared.outbox.clone(), shared.dropped.clone()));
        let r = shared.clone();
        let on_exit = self.on_exit;
        std::thread::Builder::new()
            .name(format!("aemp-rpc-recv-{pid}"))
            .spawn(move || r.run_reader(read_half, child, on_exit))
            .map_err(io_err)?;
        Ok(Rpc { shared, token })
    }
}

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
    pending: HashMap<u32, Callback<S>>,
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
}

/// A handle on one worker process serving one worker function (the
/// original's AnyEvent::Fork::RPC object).
///
/// Callbacks run on the handle's receiving thread, one at a time, in the
/// order the worker emitted results and events. Cloning gives another handle
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
    pub fn builder(worker: Worker, function: &str) -> RpcBuilder<Raw> {
        RpcBuilder::new(worker, function)
    }
}

impl<S: Serialiser> Rpc<S> {
    /// Calls the worker function with `args`; `callback` runs exactly once
    /// with the result or an error. Never blocks: the call is queued and
    /// sent in a batch with others. If the worker is already gone, the
    /// callback runs at once, on this thread.
    pub fn call(
        &self,
        args: S::Value,
        callback: impl FnOnce(Result<S::Value, Error>) + Send + 'static,
    ) {
        if let Err((cb, e)) = self.call_boxed(&args, Box::new(callback), false) {
            cb(Err(e));
        }
    }

    /// Like `call`, but hands the callback back (uncalled) when the worker
    /// is already gone, so a pool can send the job elsewhere.
    pub(crate) fn try_call(
        &self,
        args: &S::Value,
        cb: Callback<S>,
    ) -> Result<(), (Callback<S>, Error)> {
        self.call_boxed(args, cb, false)
    }

    /// Calls and waits for the result, at most `timeout`. On a time-out the
    /// call stays queued; its result is dropped when it comes.
    pub fn call_wait(&self, args: S::Value, timeout: Duration) -> Result<S::Value, Error> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let sent = self.call_boxed(
            &args,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
            true,
        );
        if let Err((_, e)) = sent {
            return Err(e);
        }
        rx.recv_timeout(timeout).unwrap_or_else(|_| {
            Err(Error::Timeout {
                what: format!("worker {} (pid {})", self.shared.function, self.shared.pid),
                ms: timeout.as_millis(),
            })
        })
    }

    fn call_boxed(
        &self,
        args: &S::Value,
        cb: Callback<S>,
        flush: bool,
    ) -> Result<(), (Callback<S>, Error)> {
        let sh = &*self.shared;
        let mut frame = wire::frame_start(64);
        let encoded = sh
            .ser
            .encode(args, &mut frame)
            .map_err(|e| match e {
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
            })
            .and_then(|()| wire::frame_finish(&mut frame, wire::CALL, 0, "arguments"));
        if let Err(e) = encoded {
            cb(Err(e));
            return Ok(());
        }
        let mut st = sh.st.lock();
        if let Some(e) = &st.dead {
            let e = e.clone();
            drop(st);
            return Err((cb, e));
        }
        let mut id = st.next_id;
        while id == 0 || st.pending.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        st.next_id = id.wrapping_add(1);
        wire::set_id(&mut frame, id);
        st.pending.insert(id, cb);
        // Pushed under the state lock so the worker sees calls in id order.
        if !sh.outbox.push(frame, !flush) {
            // Channel already broken: the reader thread will fail this call.
            log::debug!("rpc: call to {} after its channel broke", sh.function);
        }
        drop(st);
        if flush {
            sh.outbox.flush_now();
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

/// Waits up to `grace` for the child to exit, then kills it; always reaps.
fn reap(mut child: Child, grace: Duration) -> (String, bool) {
    let deadline = Instant::now() + grace;
    let mut nap = Duration::from_micros(100);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (status.to_string(), status.success()),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let status = match child.wait() {
                    Ok(status) => format!("{status}, killed by the parent"),
                    Err(e) => format!("unknown status: {e}"),
                };
                return (status, false);
            }
        }
    }
}

enum End {
    /// The channel reached end of file.
    Eof,
    /// The worker reported a panic; it exits by itself.
    Panic(String),
    /// The worker refused to serve; it exits by itself.
    Refused(String),
    /// Bad data or a broken channel: kill the worker.
    Protocol(String),
    Io(String),
}

impl<S: Serialiser> Shared<S> {
    fn report(&self, e: &Error) {
        match &self.on_error {
            Some(f) => guarded("on_error", || f(e)),
            None => log::error!("rpc: {e}"),
        }
    }

    fn take_pending(&self, id: u32) -> Option<Callback<S>> {
        self.st.lock().pending.remove(&id)
    }

    fn run_reader(self: Arc<Self>, sock: UnixStream, child: Child, on_exit: Option<ExitHook>) {
        let mut r = BufReader::with_capacity(1 << 20, sock);
        let end = loop {
            let fr = match wire::read_frame(&mut r, wire::FROM_CHILD) {
                Ok(Some(fr)) => fr,
                Ok(None) => break End::Eof,
                // The worker died with our data unread: the same as an end.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break End::Eof,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
                    ) =>
                {
                    break End::Protocol(e.to_string())
                }
                Err(e) => break End::Io(e.to_string()),
            };
            let text = || String::from_utf8_lossy(&fr.payload).into_owned();
            match fr.kind {
                wire::RESULT | wire::CALL_ERROR | wire::ABANDONED => {
                    let Some(cb) = self.take_pending(fr.id) else {
                        break End::Protocol(format!(
                            "an answer to call {}, which is not outstanding",
                            fr.id
                        ));
                    };
                    let result = match fr.kind {
                        wire::RESULT => self.ser.decode(&fr.payload).map_err(|e| match e {
                            Error::Decode {
                                serialiser,
                                len,
                                message,
                                ..
                            } => Error::Decode {
                                serialiser,
                                what: "result",
                                len,
                                message,
                            },
                            e => e,
                        }),
                        wire::CALL_ERROR => Err(Error::Call {
                            function: self.function.clone(),
                            id: fr.id,
                            message: text(),
                        }),
                        _ => Err(Error::Abandoned {
                            function: self.function.clone(),
                            id: fr.id,
                        }),
                    };
                    guarded("result", || cb(result));
                }
                wire::EVENT => match &self.on_event {
                    Some(f) => match self.ser.decode(&fr.payload) {
                        Ok(v) => guarded("on_event", || f(v)),
                        Err(e) => self.report(&e),
                    },
                    None => self.report(&Error::UnhandledEvent {
                        function: self.function.clone(),
                    }),
                },
                wire::RETIRE => {
                    if let Some(f) = &self.on_retire {
                        guarded("retire", || f());
                    }
                }
                wire::PANIC => break End::Panic(text()),
                wire::FATAL => break End::Refused(text()),
                k => {
                    let shown: Vec<u8> = fr.payload.iter().take(16).copied().collect();
                    break End::Protocol(format!(
                        "a frame of unknown kind 0x{k:02x} (id {}, {} octets, starting {:?})",
                        fr.id,
                        fr.payload.len(),
                        String::from_utf8_lossy(&shown)
                    ));
                }
            }
        };
        // The worker is gone or must go: stop sending, reap it.
        self.outbox.abort();
        let grace = match end {
            End::Eof | End::Panic(_) | End::Refused(_) => Duration::from_secs(2),
            End::Protocol(_) | End::Io(_) => Duration::ZERO,
        };
        let (status, clean) = reap(child, grace);
        let (function, pid) = (self.function.clone(), self.pid);
        let mut st = self.st.lock();
        let handles_dropped = self.dropped.load(Ordering::SeqCst);
        let error = match end {
            End::Eof if st.pending.is_empty() && handles_dropped && clean => None,
            End::Eof => Some(Error::WorkerDied {
                function: function.clone(),
                pid,
                status,
                outstanding: st.pending.len(),
            }),
            End::Panic(message) => Some(Error::Panicked {
                function: function.clone(),
                pid,
                message,
            }),
            End::Refused(message) => Some(Error::Refused {
                function: function.clone(),
                pid,
                message,
            }),
            End::Protocol(detail) => Some(Error::Protocol {
                function: function.clone(),
                pid,
                detail,
            }),
            End::Io(message) => Some(Error::Io {
                function: function.clone(),
                pid,
                message,
            }),
        };
        st.dead = Some(error.clone().unwrap_or(Error::Closed {
            function: function.clone(),
        }));
        let pending: Vec<Callback<S>> = {
            let mut ids: Vec<u32> = st.pending.keys().copied().collect();
            ids.sort_unstable();
            ids.into_iter()
                .filter_map(|id| st.pending.remove(&id))
                .collect()
        };
        drop(st);
        match &error {
            Some(e) => {
                log::debug!("rpc: {e}");
                for cb in pending {
                    guarded("result", || cb(Err(e.clone())));
                }
                self.report(e);
            }
            None => {
                if let Some(f) = &self.on_destroy {
                    guarded("on_destroy", || f());
                }
            }
        }
        if let Some(f) = on_exit {
            guarded("exit", || f(error.as_ref()));
        }
        self.st.lock().ended = true;
        self.ended.notify_all();
    }
}
