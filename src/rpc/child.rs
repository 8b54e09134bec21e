//! The worker side: registering worker functions, and the functions a
//! worker function may call (`event`, `retire`). Serving them, once the
//! process knows it is a worker, is in `serve.rs`.

mod serve;

use std::any::Any;
use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use once_cell::sync::{Lazy, OnceCell};
use parking_lot::{Condvar, Mutex};

use super::serialiser::Serialiser;
use super::wire::{self, Outbox};
use super::wire::{ENV_EXTRA_FD, ENV_FD};
use super::{Backend, Error};

/// A sync worker function: the call's id, its encoded arguments, and the
/// frame buffer to append the encoded result to.
pub(crate) type SyncFn = Arc<dyn Fn(u32, &[u8], &mut Vec<u8>) -> Result<(), String> + Send + Sync>;
type AsyncFn = Arc<dyn Fn(u32, &[u8]) -> Result<(), String> + Send + Sync>;
pub(crate) type EventFn = Arc<dyn Fn(&dyn Any, &mut Vec<u8>) -> Result<(), Error> + Send + Sync>;
type InitFn = Arc<dyn Fn(Vec<Vec<u8>>) -> Result<(), String> + Send + Sync>;
type DoneFn = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
enum Body {
    Sync(SyncFn),
    Async(AsyncFn),
}

struct Entry {
    serialiser: &'static str,
    body: Body,
    event: EventFn,
}

#[derive(Default)]
struct Registry {
    functions: HashMap<String, Entry>,
    inits: HashMap<String, InitFn>,
    dones: HashMap<String, DoneFn>,
}

static REGISTRY: Lazy<Mutex<Registry>> = Lazy::new(Default::default);

/// What the serving process is doing; set once serving starts.
struct Serving {
    outbox: Arc<Outbox>,
    function: String,
    serialiser: &'static str,
    backend: Backend,
    event: OnceCell<EventFn>,
    /// Outstanding async calls, and a condvar to wait for zero.
    outstanding: Mutex<usize>,
    idle: Condvar,
}

static SERVING: OnceCell<Serving> = OnceCell::new();
static EXTRA_FD: Mutex<Option<OwnedFd>> = Mutex::new(None);
static IS_WORKER: AtomicBool = AtomicBool::new(false);
/// This process has started a worker.
static SPAWNED: AtomicBool = AtomicBool::new(false);

/// Called before starting a worker: refused in a process started as a
/// worker that has not called [`serve_if_worker`] yet (it would start
/// workers before serving, each of which would do the same).
pub(crate) fn check_spawn() -> Result<(), Error> {
    if std::env::var_os(ENV_FD).is_some() && !IS_WORKER.load(Ordering::Relaxed) {
        return Err(Error::LateServe {
            message: "this process was started as a worker, but starts a worker before \
                      calling serve_if_worker: call serve_if_worker first in main (else \
                      every worker would start another)",
        });
    }
    SPAWNED.store(true, Ordering::SeqCst);
    Ok(())
}

fn event_encoder<S: Serialiser>(ser: S, function: &str) -> EventFn {
    let function = function.to_string();
    Arc::new(
        move |v: &dyn Any, out: &mut Vec<u8>| match v.downcast_ref::<S::Value>() {
            Some(v) => ser.encode(v, out),
            None => Err(Error::EventType {
                function: function.clone(),
                serialiser: ser.name(),
                got: "value of another type",
            }),
        },
    )
}

/// Registers a synchronous worker function under `name`, for the `sync`
/// backend: it gets the decoded arguments and returns the result. Calls run
/// one at a time, in order.
///
/// A panic in `f` ends the worker; the parent gets the panic's message.
///
/// ```
/// use aemp::rpc::{self, Json};
/// use serde_json::{json, Value};
/// fn main() {
///     rpc::register_sync("add", Json::new(), |v: Value| json!(v[0].as_i64().unwrap() + v[1].as_i64().unwrap()));
///     rpc::serve_if_worker().expect("serve_if_worker comes first");
///     // ... the parent's program goes on here
/// }
/// ```
pub fn register_sync<S, F>(name: &str, serialiser: S, f: F)
where
    S: Serialiser,
    F: Fn(S::Value) -> S::Value + Send + Sync + 'static,
{
    let ser = serialiser.clone();
    let body: SyncFn = Arc::new(move |_id: u32, args: &[u8], out: &mut Vec<u8>| {
        let v = ser.decode(args).map_err(|e| format!("arguments: {e}"))?;
        let r = f(v);
        ser.encode(&r, out).map_err(|e| format!("result: {e}"))
    });
    let event = event_encoder(serialiser.clone(), name);
    register_sync_fn(name, serialiser.name(), body, event);
}

/// Registers a sync worker function in its encoded form (for the typed
/// layer too).
pub(crate) fn register_sync_fn(name: &str, serialiser: &'static str, body: SyncFn, event: EventFn) {
    REGISTRY.lock().functions.insert(
        name.to_string(),
        Entry {
            serialiser,
            body: Body::Sync(body),
            event,
        },
    );
}

/// Sends an encoded event frame (built with [`wire::frame_start`]) of call
/// `id` (0: of no call in particular) to the parent.
pub(crate) fn send_event(mut frame: Vec<u8>, id: u32) -> Result<(), Error> {
    let s = SERVING.get().ok_or(Error::NotWorker { what: "event" })?;
    wire::frame_finish(&mut frame, wire::EVENT, id, "event")?;
    s.outbox.push(frame, s.backend == Backend::Async);
    if s.backend == Backend::Sync {
        s.outbox.flush_now();
    }
    Ok(())
}

/// Completes one call of an asynchronous worker function. Call
/// [`Done::done`] with the result, from any thread, before or after the
/// worker function returns. Dropping it without completing ends the call
/// with [`Error::Abandoned`] in the parent.
pub struct Done<S: Serialiser> {
    id: u32,
    ser: S,
    finished: bool,
}

impl<S: Serialiser> Done<S> {
    /// The call's id (unique among the calls outstanding).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends the result to the parent.
    pub fn done(mut self, result: S::Value) {
        self.finished = true;
        let mut f = wire::frame_start(64);
        let frame = match self.ser.encode(&result, &mut f) {
            Ok(()) => match wire::frame_finish(&mut f, wire::RESULT, self.id, "result") {
                Ok(()) => f,
                Err(e) => wire::frame(wire::CALL_ERROR, self.id, e.to_string().as_bytes()),
            },
            Err(e) => wire::frame(wire::CALL_ERROR, self.id, format!("result: {e}").as_bytes()),
        };
        finish_async(frame);
    }
}

impl<S: Serialiser> Drop for Done<S> {
    fn drop(&mut self) {
        if !self.finished {
            finish_async(wire::frame(wire::ABANDONED, self.id, b""));
        }
    }
}

fn finish_async(frame: Vec<u8>) {
    if let Some(s) = SERVING.get() {
        s.outbox.push(frame, true);
        let mut n = s.outstanding.lock();
        *n = n.saturating_sub(1);
        if *n == 0 {
            s.idle.notify_all();
        }
    }
}

/// Registers an asynchronous worker function under `name`, for the `async`
/// backend: it gets a [`Done`] handle and the decoded arguments, and may
/// complete the call later, from any thread. Many calls run concurrently;
/// the parent matches results to calls by id.
///
/// ```
/// use aemp::rpc::{self, Done, Raw};
/// rpc::register_async("echo_later", Raw, |done: Done<Raw>, args: Vec<u8>| {
///     std::thread::spawn(move || done.done(args));
/// });
/// ```
pub fn register_async<S, F>(name: &str, serialiser: S, f: F)
where
    S: Serialiser,
    F: Fn(Done<S>, S::Value) + Send + Sync + 'static,
{
    let ser = serialiser.clone();
    let body: AsyncFn = Arc::new(move |id: u32, args: &[u8]| {
        let v = ser.decode(args).map_err(|e| format!("arguments: {e}"))?;
        f(
            Done {
                id,
                ser: ser.clone(),
                finished: false,
            },
            v,
        );
        Ok(())
    });
    REGISTRY.lock().functions.insert(
        name.to_string(),
        Entry {
            serialiser: serialiser.name(),
            body: Body::Async(body),
            event: event_encoder(serialiser, name),
        },
    );
}

/// Registers an `init` function: the parent names it with
/// [`RpcBuilder::init`](super::RpcBuilder::init), and the worker runs it
/// first, with the init arguments in order, before serving any call. An
/// `Err` refuses to serve; the parent's calls fail with
/// [`Error::Refused`] carrying the message. It cannot send events.
///
/// ```
/// use aemp::rpc::{self, Function, Worker};
/// use std::time::Duration;
/// const HELLO: Function<(), String> = Function::json("hello");
/// rpc::register_init("strict", |args| {
///     if args.is_empty() { Err("init needs a name".into()) } else { Ok(()) }
/// });
/// HELLO.register(|(), _| Ok("hello".into()));
/// rpc::serve_if_worker()?;
///
/// let t = Duration::from_secs(5);
/// let ok = HELLO.rpc(Worker::current_exe()).init("strict", vec![b"ann".to_vec()]).spawn()?;
/// assert_eq!(ok.call_wait((), t), Ok("hello".into()));
/// ok.join(t)?;
/// let refused = HELLO.rpc(Worker::current_exe()).init("strict", vec![]).spawn()?;
/// assert!(refused.call_wait((), t).is_err()); // Error::Refused: "init needs a name"
/// # Ok::<(), aemp::rpc::Error>(())
/// ```
pub fn register_init<F>(name: &str, f: F)
where
    F: Fn(Vec<Vec<u8>>) -> Result<(), String> + Send + Sync + 'static,
{
    REGISTRY.lock().inits.insert(name.to_string(), Arc::new(f));
}

/// Registers a `done` function for the async backend: when the parent closes
/// the channel and every call has completed, the worker runs it instead of
/// exiting at once, and exits when it returns (the original's `done`
/// option). Named by [`RpcBuilder::done`](super::RpcBuilder::done).
///
/// ```
/// use aemp::rpc::{self, Backend, Done, Raw, Rpc, Worker};
/// use std::io::Write;
/// use std::time::Duration;
/// rpc::register_async("echo", Raw, |done: Done<Raw>, v: Vec<u8>| done.done(v));
/// // Runs once the parent is finished with the worker, before it exits.
/// rpc::register_done("flush", || {
///     let path = std::env::var("DONE_FILE").unwrap();
///     std::fs::File::create(path).unwrap().write_all(b"flushed").unwrap();
/// });
/// rpc::serve_if_worker()?;
///
/// let dir = tempfile::tempdir().unwrap();
/// let file = dir.path().join("done");
/// let rpc = Rpc::builder(Worker::current_exe().env("DONE_FILE", &file), "echo")
///     .backend(Backend::Async)
///     .done("flush")
///     .spawn()?;
/// assert_eq!(rpc.call_wait(b"x".to_vec(), Duration::from_secs(5))?, b"x");
/// rpc.join(Duration::from_secs(5))?; // closes the channel: the worker runs "flush", exits
/// assert_eq!(std::fs::read(&file).unwrap(), b"flushed");
/// # Ok::<(), aemp::rpc::Error>(())
/// ```
pub fn register_done<F>(name: &str, f: F)
where
    F: Fn() + Send + Sync + 'static,
{
    REGISTRY.lock().dones.insert(name.to_string(), Arc::new(f));
}

/// Sends an event to the parent's `on_event` handler. The value must have
/// the type of the worker function's serialiser (`Vec<u8>` for [`Raw`](super::Raw),
/// `serde_json::Value` for `Json`, ...). Events and results reach the
/// parent in the order they were emitted. Callable from any thread of a
/// worker.
///
/// ```
/// use aemp::rpc::{self, Json, Rpc, Worker};
/// use serde_json::{json, Value};
/// use std::time::Duration;
/// rpc::register_sync("work", Json::new(), |v: Value| {
///     rpc::event(&json!({"progress": 50})).unwrap(); // a Json function's events are Values
///     v
/// });
/// rpc::serve_if_worker()?;
///
/// let (tx, rx) = crossbeam_channel::unbounded();
/// let rpc = Rpc::builder(Worker::current_exe(), "work")
///     .serialiser(Json::new())
///     .on_event(move |ev| tx.send(ev).unwrap())
///     .spawn()?;
/// assert_eq!(rpc.call_wait(json!("x"), Duration::from_secs(5))?, json!("x"));
/// assert_eq!(rx.try_recv().unwrap(), json!({"progress": 50})); // before the result
/// assert!(rpc::event(&json!(1)).is_err()); // not in a worker
/// rpc.join(Duration::from_secs(5))?;
/// # Ok::<(), aemp::rpc::Error>(())
/// ```
pub fn event<V: Any>(value: &V) -> Result<(), Error> {
    let s = SERVING.get().ok_or(Error::NotWorker { what: "event" })?;
    let enc = s.event.get().ok_or(Error::NotWorker { what: "event" })?;
    let mut f = wire::frame_start(64);
    enc(value, &mut f).map_err(|e| match e {
        Error::EventType {
            function,
            serialiser,
            ..
        } => Error::EventType {
            function,
            serialiser,
            got: std::any::type_name::<V>(),
        },
        e => e,
    })?;
    send_event(f, 0)
}

/// Asks a pool to retire this worker: it gets no new calls, finishes the
/// ones it has, and is then stopped (and replaced when needed). Calling it
/// again is harmless. Outside a pool the parent ignores it.
pub fn retire() -> Result<(), Error> {
    let s = SERVING.get().ok_or(Error::NotWorker { what: "retire" })?;
    s.outbox.push(wire::frame(wire::RETIRE, 0, b""), true);
    Ok(())
}

/// Takes the extra file descriptor the parent passed with
/// [`Worker::fd`](super::Worker::fd), once.
pub fn take_extra_fd() -> Option<OwnedFd> {
    EXTRA_FD.lock().take()
}

/// Whether this process was started as a worker.
///
/// ```
/// use aemp::rpc::{Function, Worker};
/// use std::time::Duration;
/// const AM_I: Function<(), bool> = Function::json("am_i");
/// AM_I.register(|(), _| Ok(aemp::rpc::is_worker()));
/// aemp::rpc::serve_if_worker()?;
///
/// assert!(!aemp::rpc::is_worker()); // the parent
/// let rpc = AM_I.rpc(Worker::current_exe()).spawn()?;
/// assert_eq!(rpc.call_wait((), Duration::from_secs(5)), Ok(true));
/// rpc.join(Duration::from_secs(5))?;
/// # Ok::<(), aemp::rpc::Error>(())
/// ```
pub fn is_worker() -> bool {
    IS_WORKER.load(Ordering::Relaxed) || std::env::var_os(ENV_FD).is_some()
}

/// The entry point of a worker process. Call it first in `main`, after
/// registering the worker functions and before starting any worker: when
/// the process was started as a worker it serves the function the parent
/// asked for and then exits the process (it never returns); otherwise it
/// returns `Ok(())` at once.
///
/// A worker runs `main` again from the start, so a program that started a
/// worker before this call would have every worker start another.
/// Both ends refuse that order: called after this process started a
/// worker, it returns [`Error::LateServe`]; and a process started as a
/// worker cannot start workers before it serves (the start fails with the
/// same error).
///
/// ```
/// // First thing in `main`:
/// aemp::rpc::register_sync("square", aemp::rpc::Raw, |v: Vec<u8>| vec![v[0] * v[0]]);
/// aemp::rpc::serve_if_worker().expect("serve_if_worker comes first");
/// // The parent's code goes on from here.
/// ```
pub fn serve_if_worker() -> Result<(), Error> {
    if SPAWNED.load(Ordering::SeqCst) {
        return Err(Error::LateServe {
            message: "serve_if_worker was called after this process started a worker: \
                      call it first in main, before starting any worker (a worker runs \
                      main again and would start workers of its own)",
        });
    }
    let Some(fd) = std::env::var_os(ENV_FD) else {
        return Ok(());
    };
    IS_WORKER.store(true, Ordering::Relaxed);
    std::env::remove_var(ENV_FD);
    let no_poll = std::env::var_os(wire::ENV_NO_POLL).is_some();
    std::env::remove_var(wire::ENV_NO_POLL);
    let fd: i32 = match fd.to_str().and_then(|s| s.parse().ok()) {
        Some(fd) if fd > 2 => fd,
        _ => {
            log::error!("rpc worker: bad {ENV_FD} value {fd:?}");
            std::process::exit(2);
        }
    };
    if let Some(extra) = std::env::var_os(ENV_EXTRA_FD) {
        std::env::remove_var(ENV_EXTRA_FD);
        if let Some(x) = extra.to_str().and_then(|s| s.parse::<i32>().ok()) {
            // SAFETY: the parent passed this descriptor open for us alone.
            *EXTRA_FD.lock() = Some(unsafe { OwnedFd::from_raw_fd(x) });
        }
    }
    // SAFETY: the parent passed this descriptor (our channel) open for us alone.
    let sock = unsafe { UnixStream::from_raw_fd(fd) };
    // Our own children must not inherit the channel.
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let code = serve::serve(sock, no_poll);
    std::process::exit(code);
}
