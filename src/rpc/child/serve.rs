//! Serving in the worker process: reading the parent's start frame,
//! finding the registered functions it names ([`Start`]), running the
//! init function, then the call loop of the sync or the async backend,
//! and the done function. A refusal or a broken channel ends the worker
//! with a `FATAL` frame ([`fatal`]); a panic with a `PANIC` frame.

use std::collections::HashMap;
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use once_cell::sync::OnceCell;
use parking_lot::{Condvar, Mutex};

use super::{finish_async, AsyncFn, Body, EventFn, Serving, SyncFn, REGISTRY, SERVING};
use crate::busy::{BusyWait, DEFAULT_BUSY_WAIT};
use crate::rpc::serialiser::Strings;
use crate::rpc::wire::{self, Frame, Outbox};
use crate::rpc::Backend;

/// What the parent's start frame asks for.
struct Start {
    function: String,
    serialiser: String,
    backend: Backend,
    /// Sync: send each result before starting the next call.
    flush_results: bool,
    init: String,
    done: String,
    init_args: Vec<Vec<u8>>,
}

/// The registered functions a start frame names.
struct Found {
    serialiser: &'static str,
    body: Body,
    event: EventFn,
    init: Option<super::InitFn>,
    done: Option<super::DoneFn>,
}

/// Serves the parent on `sock` until it closes the channel (`no_poll`:
/// without polling for the next call, except after one whose caller
/// waits, [`wire::WAITED`]); returns the process's exit code.
pub(super) fn serve(sock: UnixStream, no_poll: bool) -> i32 {
    let write_half = match sock.try_clone() {
        Ok(s) => s,
        Err(e) => {
            log::error!("rpc worker: cannot clone channel: {e}");
            return 2;
        }
    };
    let outbox = match Outbox::start(write_half, "aemp-rpc-writer") {
        Ok(o) => o,
        Err(e) => {
            log::error!("rpc worker: cannot start writer thread: {e}");
            return 2;
        }
    };
    // Pools' workers do not poll (see `RpcBuilder::poll`), except after
    // a call whose caller waits for it.
    let budget = if no_poll {
        Duration::ZERO
    } else {
        DEFAULT_BUSY_WAIT
    };
    let mut reader = FromParent {
        r: BufReader::with_capacity(256 << 10, wire::Chan::new(sock)),
        busy: BusyWait::new(budget),
        after_waited: no_poll.then(|| BusyWait::new(DEFAULT_BUSY_WAIT)),
        waited: false,
    };
    let start = match Start::read(&mut reader) {
        Ok(Some(start)) => start,
        Ok(None) => return 0, // parent gave up before starting us
        Err(message) => return fatal(&outbox, message),
    };
    let serving = match start
        .find()
        .and_then(|found| run(start, found, &outbox, &mut reader))
    {
        Ok(serving) => serving,
        Err(message) => return fatal(&outbox, message),
    };
    outbox.close();
    outbox.wait_finished(Duration::from_secs(3600));
    log::debug!(
        "rpc worker {} for {} exits",
        std::process::id(),
        serving.function
    );
    0
}

impl Start {
    /// Reads the start frame (`None`: the channel ended first).
    fn read(reader: &mut FromParent) -> Result<Option<Start>, String> {
        let start = match wire::read_frame(&mut reader.r, wire::FROM_PARENT) {
            Ok(Some(f)) if f.kind == wire::START => f,
            Ok(None) => return Ok(None),
            Ok(Some(f)) => {
                return Err(format!("expected a start frame, got kind 0x{:02x}", f.kind))
            }
            Err(e) => return Err(format!("reading start frame: {e}")),
        };
        let params = match Strings::unpack(&start.payload) {
            Ok(p) if p.len() >= 6 && p[0] == wire::MAGIC => p,
            Ok(p) => {
                return Err(format!(
                    "start frame is not {}: {:?}",
                    String::from_utf8_lossy(wire::MAGIC),
                    p.first().map(|m| String::from_utf8_lossy(m).into_owned())
                ))
            }
            Err(e) => return Err(format!("bad start frame: {e}")),
        };
        let text = |i: usize| String::from_utf8_lossy(&params[i]).into_owned();
        Ok(Some(Start {
            function: text(1),
            serialiser: text(2),
            backend: if params[3] == wire::ASYNC {
                Backend::Async
            } else {
                Backend::Sync
            },
            flush_results: params[3] == wire::SYNC_FLUSH,
            init: text(4),
            done: text(5),
            init_args: params[6..].to_vec(),
        }))
    }

    /// Looks up the functions the parent named, and checks that the worker
    /// function has the serialiser and backend the parent asked for.
    fn find(&self) -> Result<Found, String> {
        let function = &self.function;
        let found = {
            let reg = REGISTRY.lock();
            let Some(entry) = reg.functions.get(function) else {
                let mut names: Vec<&str> = reg.functions.keys().map(String::as_str).collect();
                names.sort_unstable();
                return Err(format!(
                    "no worker function named {function:?} is registered in {} (registered: {})",
                    exe_name(),
                    names.join(", ")
                ));
            };
            Found {
                serialiser: entry.serialiser,
                body: entry.body.clone(),
                event: entry.event.clone(),
                init: named(&reg.inits, "init", &self.init)?,
                done: named(&reg.dones, "done", &self.done)?,
            }
        };
        if found.serialiser != self.serialiser {
            let (theirs, ours) = (found.serialiser, &self.serialiser);
            return Err(
                if theirs.starts_with("typed-") || ours.starts_with("typed-") {
                    format!("worker function {function:?} is registered as `{theirs}`, the parent asked for `{ours}`")
                } else {
                    format!("worker function {function:?} uses the {theirs} serialiser, the parent asked for {ours}")
                },
            );
        }
        let fn_backend = match found.body {
            Body::Sync(_) => Backend::Sync,
            Body::Async(_) => Backend::Async,
        };
        if fn_backend != self.backend {
            return Err(format!("worker function {function:?} is registered for the {fn_backend:?} backend, the parent asked for {:?}", self.backend));
        }
        Ok(found)
    }
}

/// The init or done function registered as `name` (none for "").
fn named<F: Clone>(
    table: &HashMap<String, F>,
    kind: &str,
    name: &str,
) -> Result<Option<F>, String> {
    if name.is_empty() {
        return Ok(None);
    }
    match table.get(name) {
        Some(f) => Ok(Some(f.clone())),
        None => Err(format!(
            "no {kind} function named {name:?} is registered in {}",
            exe_name()
        )),
    }
}

/// Serves what `start` asks for with the `found` functions: the init
/// function, every call until the parent closes the channel, the done
/// function.
fn run(
    start: Start,
    found: Found,
    outbox: &Arc<Outbox>,
    reader: &mut FromParent,
) -> Result<&'static Serving, String> {
    let _ = SERVING.set(Serving {
        outbox: outbox.clone(),
        function: start.function.clone(),
        serialiser: found.serialiser,
        backend: start.backend,
        event: OnceCell::new(),
        outstanding: Mutex::new(0),
        idle: Condvar::new(),
    });
    let serving = SERVING.get().expect("just set");
    install_panic_hook();
    if let Some(init_fn) = found.init {
        if let Err(e) = init_fn(start.init_args) {
            return Err(format!("init function {:?} failed: {e}", start.init));
        }
    }
    let _ = serving.event.set(found.event);
    log::debug!(
        "rpc worker {} serving {:?} ({:?}, {})",
        std::process::id(),
        start.function,
        serving.backend,
        serving.serialiser
    );
    match found.body {
        Body::Sync(f) => reader.serve_sync(outbox, &f, start.flush_results)?,
        Body::Async(f) => reader.serve_async(serving, &f)?,
    }
    if let (Backend::Async, Some(done_fn)) = (start.backend, found.done) {
        done_fn();
    }
    Ok(serving)
}

pub(super) fn fatal(outbox: &Outbox, message: String) -> i32 {
    log::error!("rpc worker: {message}");
    outbox.push(wire::frame(wire::FATAL, 0, message.as_bytes()), true);
    outbox.close();
    outbox.wait_finished(Duration::from_secs(5));
    3
}

fn install_panic_hook() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        prev(info);
        let what = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "Box<dyn Any>".to_string()
        };
        let message = match info.location() {
            Some(l) => format!("{what} (at {}:{})", l.file(), l.line()),
            None => what,
        };
        if let Some(s) = SERVING.get() {
            s.outbox
                .push(wire::frame(wire::PANIC, 0, message.as_bytes()), true);
            s.outbox.close();
            s.outbox.wait_finished(Duration::from_secs(5));
        }
        std::process::exit(101);
    }));
}

fn exe_name() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "this program".into())
}

/// The channel from the parent, as the worker reads it, and the busy-wait
/// state of the thread waiting for the next call.
struct FromParent {
    r: BufReader<wire::Chan>,
    /// The worker's own busy-wait (none in a pool's worker).
    busy: BusyWait,
    /// A worker without a busy-wait of its own: the one it uses after a
    /// call whose caller waits for it (its id has [`wire::WAITED`]).
    after_waited: Option<BusyWait>,
    /// The last call was such a call.
    waited: bool,
}

impl FromParent {
    /// The next call (`None`: the parent closed the channel).
    fn next_call(&mut self) -> Result<Option<Frame>, String> {
        let busy = match &mut self.after_waited {
            Some(after) if self.waited => after,
            _ => &mut self.busy,
        };
        let frame = match wire::read_frame_polling(&mut self.r, wire::FROM_PARENT, busy) {
            Ok(Some(fr)) => fr,
            Ok(None) => return Ok(None),
            Err(e) => return Err(format!("reading from parent: {e}")),
        };
        // The id, echoed as it came, tells whether the caller waits.
        self.waited = frame.id & wire::WAITED != 0;
        if frame.kind != wire::CALL {
            return Err(format!(
                "unexpected frame kind 0x{:02x} from parent",
                frame.kind
            ));
        }
        Ok(Some(frame))
    }

    /// The sync backend: one call at a time, each answered before the next.
    /// Results are batched while more calls are buffered, unless the parent
    /// asked for `flush_results`: then each result is with the kernel before
    /// the next call starts (it reaches the parent even if that call kills
    /// the worker), so the parent knows which call was running.
    fn serve_sync(
        &mut self,
        outbox: &Outbox,
        f: &SyncFn,
        flush_results: bool,
    ) -> Result<(), String> {
        while let Some(frame) = self.next_call()? {
            let mut out = wire::frame_start(64);
            let reply = match f(frame.id, &frame.payload, &mut out) {
                Ok(()) => match wire::frame_finish(&mut out, wire::RESULT, frame.id, "result") {
                    Ok(()) => out,
                    Err(e) => wire::frame(wire::CALL_ERROR, frame.id, e.to_string().as_bytes()),
                },
                Err(msg) => wire::frame(wire::CALL_ERROR, frame.id, msg.as_bytes()),
            };
            outbox.push(reply, false);
            if flush_results {
                outbox.flush_wait();
            } else if self.r.buffer().is_empty() {
                // Batch results while more calls are already buffered.
                outbox.flush_now();
            }
        }
        Ok(())
    }

    /// The async backend: hands every call to the worker function, then
    /// waits until every call has completed.
    fn serve_async(&mut self, serving: &Serving, f: &AsyncFn) -> Result<(), String> {
        while let Some(frame) = self.next_call()? {
            *serving.outstanding.lock() += 1;
            if let Err(msg) = f(frame.id, &frame.payload) {
                finish_async(wire::frame(wire::CALL_ERROR, frame.id, msg.as_bytes()));
            }
        }
        let mut n = serving.outstanding.lock();
        while *n > 0 {
            serving.idle.wait(&mut n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn after_a_call_whose_caller_waits_the_next_wait_polls() {
        let (mut parent, child) = UnixStream::pair().unwrap();
        // A pool's worker: no busy-wait of its own.
        let mut r = FromParent {
            r: BufReader::new(wire::Chan::new(child)),
            busy: BusyWait::new(Duration::ZERO),
            after_waited: Some(BusyWait::new(DEFAULT_BUSY_WAIT)),
            waited: false,
        };
        let waited = 1 | wire::WAITED;
        parent
            .write_all(&wire::frame(wire::CALL, waited, b"x"))
            .unwrap();
        parent.write_all(&wire::frame(wire::CALL, 2, b"y")).unwrap();
        // The id stays as it came: the answer echoes it.
        let f = r.next_call().unwrap().unwrap();
        assert_eq!(
            (f.kind, f.id, &f.payload[..]),
            (wire::CALL, waited, &b"x"[..])
        );
        assert!(r.waited, "the wait for the next call polls");
        let f = r.next_call().unwrap().unwrap();
        assert_eq!((f.kind, f.id, &f.payload[..]), (wire::CALL, 2, &b"y"[..]));
        assert!(!r.waited, "after a plain call it does not");
        // Other kinds are still refused; the end is still the end.
        parent
            .write_all(&wire::frame(wire::RESULT, 3, b""))
            .unwrap();
        assert!(r.next_call().is_err());
        drop(parent);
    }
}
