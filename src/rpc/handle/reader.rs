//! The receiving thread of one worker's handle: a [`Reader`] reads the
//! worker's frames and runs the callbacks (the handle's [`Shared`] state
//! has one method per kind of frame); when the channel ends it reaps the
//! child, fails every outstanding call and runs the end hooks
//! ([`Reader::finish`]).
//!
//! A caller waiting in `call_wait` reads the channel itself while it polls
//! for its answer ([`Shared::read_ready`]), so a round trip wakes two
//! threads (the worker's and the caller) instead of three; the receiving
//! thread naps meanwhile, and takes over what the caller leaves (a frame
//! not yet whole, the channel's end).

use std::io::{self, BufReader};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{guarded, Answer, ExitHook, Origin, Pending, Shared};
use crate::busy::{BusyWait, DEFAULT_BUSY_WAIT};
use crate::rpc::serialiser::Serialiser;
use crate::rpc::wire::{self, Frame};
use crate::rpc::{Backend, Error};

/// How long the receiving thread naps at most while a caller reads the
/// channel (it is woken when the caller leaves work for it).
const NAP: Duration = Duration::from_millis(1);

/// The channel's read half, shared by the receiving thread and callers
/// waiting in `call_wait`; whoever holds it reads and handles frames, so
/// callbacks still run one at a time and in order.
pub(in crate::rpc) struct Inbox {
    sock: BufReader<wire::Chan>,
    /// A caller met the channel's end: the receiving thread finishes.
    end: Option<End>,
    /// Wakes the receiving thread from `poll` (see [`Inbox::new`]).
    wake: UnixStream,
}

impl Inbox {
    /// The inbox reading `sock`, and the other end of its wake-up pair,
    /// which the receiving thread polls beside the socket: a caller that
    /// leaves it data it took out of the socket (a frame not yet whole)
    /// must wake it even from `poll`.
    pub(super) fn new(sock: UnixStream) -> io::Result<(Inbox, UnixStream)> {
        let (wake, woken) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        woken.set_nonblocking(true)?;
        let inbox = Inbox {
            sock: BufReader::with_capacity(1 << 20, wire::Chan::new(sock)),
            end: None,
            wake,
        };
        Ok((inbox, woken))
    }
}

/// Why the reader stopped reading.
pub(super) enum End {
    /// The channel reached end of file.
    Eof,
    /// The worker reported a panic or refused to serve; it exits by itself.
    Exits(Error),
    /// Bad data or a broken channel: kill the worker.
    Kill(Error),
}

/// The state of one receiving thread: the handle's shared state and the
/// child process to reap at the end.
pub(super) struct Reader<S: Serialiser> {
    shared: Arc<Shared<S>>,
    child: Child,
    on_exit: Option<ExitHook>,
    /// Polls for the worker's next frame before blocking.
    busy: BusyWait,
    /// Readable when a caller left work (see [`Inbox::new`]).
    woken: UnixStream,
}

impl<S: Serialiser> Reader<S> {
    /// Starts the receiving thread of the worker `child`.
    pub(super) fn spawn(
        shared: Arc<Shared<S>>,
        child: Child,
        on_exit: Option<ExitHook>,
        woken: UnixStream,
        poll: bool,
    ) -> std::io::Result<()> {
        let mut reader = Reader {
            shared,
            child,
            on_exit,
            busy: BusyWait::new(if poll {
                DEFAULT_BUSY_WAIT
            } else {
                Duration::ZERO
            }),
            woken,
        };
        std::thread::Builder::new()
            .name(format!("aemp-rpc-recv-{}", reader.shared.pid))
            .spawn(move || {
                let end = reader.read_all();
                reader.finish(end);
            })?;
        Ok(())
    }

    /// Serves frames until the channel ends or the worker misbehaves.
    fn read_all(&mut self) -> End {
        let sh = &*self.shared;
        // The last wait saw input in the socket.
        let mut input = false;
        loop {
            let mut inbox = sh.inbox.lock();
            if let Some(end) = sh.read_available(&mut inbox, input) {
                return end;
            }
            if sh.readers.load(Ordering::SeqCst) > 0 {
                // A caller reads meanwhile (and wakes us when it leaves
                // something to do): polling the socket too would only
                // compete with it.
                sh.nap.wait_for(&mut inbox, NAP);
                continue;
            }
            let fd = inbox.sock.get_ref().as_raw_fd();
            drop(inbox);
            // Poll only while calls are outstanding: an idle handle's
            // thread (or one whose calls a caller reads) sleeps at once.
            let expecting = !sh.st.lock().pending.is_empty();
            let start = Instant::now();
            input = false;
            let ready = || {
                input = wire::input_waiting(fd);
                input || sh.readers.load(Ordering::SeqCst) > 0
            };
            if !(expecting && self.busy.spin(start, None, ready)) {
                let woken;
                (input, woken) = wait_readable(fd, self.woken.as_raw_fd());
                if expecting {
                    self.busy.slept(start);
                }
                if woken {
                    // Drop the wake-ups (the inbox is looked at next).
                    let mut octets = [0u8; 64];
                    while matches!(io::Read::read(&mut &self.woken, &mut octets), Ok(n) if n > 0) {}
                }
            }
        }
    }
}

/// Sleeps until `fd` or `woken` is readable (or has ended, or failed);
/// which of them are.
fn wait_readable(fd: RawFd, woken: RawFd) -> (bool, bool) {
    let mut p = [fd, woken].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // SAFETY: two pollfds on the stack, for sockets the caller holds open.
    // An error (EINTR) just makes the caller look again.
    let n = unsafe { libc::poll(p.as_mut_ptr(), 2, -1) };
    match n {
        n if n > 0 => (p[0].revents != 0, p[1].revents != 0),
        _ => (false, false),
    }
}

impl<S: Serialiser> Shared<S> {
    /// Reads and handles the frames available now, or gives the channel's
    /// end: what is buffered (a frame begun is read to its end) and one
    /// read of the socket when the buffer is empty and it has `input` (seen
    /// by the caller's wait; else looked at here). When the buffer runs
    /// dry after that, the caller's wait looks for more.
    fn read_available(&self, inbox: &mut Inbox, mut input: bool) -> Option<End> {
        if !input && inbox.sock.buffer().is_empty() {
            input = wire::input_waiting(inbox.sock.get_ref().as_raw_fd());
        }
        loop {
            if let Some(end) = inbox.end.take() {
                return Some(end);
            }
            if inbox.sock.buffer().is_empty() {
                if !input {
                    return None;
                }
                // (Should a caller have taken the input meanwhile, this
                // read waits for the next: callers then wait for the
                // answers this thread hands them.)
                input = false;
            }
            if let Err(end) = self
                .next_frame(&mut inbox.sock)
                .and_then(|fr| self.on_frame(fr))
            {
                return Some(end);
            }
        }
    }

    /// A caller waiting for its answer: reads and handles the frames that
    /// are whole already, without blocking. What it cannot finish (a frame
    /// still arriving, the channel's end) it leaves to the receiving
    /// thread, which it wakes.
    pub(super) fn read_ready(&self, inbox: &mut Inbox) {
        while inbox.end.is_none() {
            if inbox.sock.buffer().is_empty() {
                match wire::try_fill(&mut inbox.sock) {
                    Ok(wire::Fill::Nothing) => return,
                    Ok(wire::Fill::Data) => continue,
                    Ok(wire::Fill::End) => inbox.end = Some(End::Eof),
                    Err(e) => inbox.end = Some(self.read_error(e)),
                }
                break;
            }
            if !wire::whole_frame(inbox.sock.buffer()) {
                break;
            }
            if let Err(end) = self
                .next_frame(&mut inbox.sock)
                .and_then(|fr| self.on_frame(fr))
            {
                inbox.end = Some(end);
            }
        }
        // Wake the receiving thread, napping or in `poll` (where data taken
        // out of the socket would not wake it).
        self.nap.notify_one();
        let _ = io::Write::write(&mut &inbox.wake, &[1]);
    }

    /// The next frame from the worker, or why there is none.
    fn next_frame(&self, sock: &mut BufReader<wire::Chan>) -> Result<Frame, End> {
        match wire::read_frame(sock, wire::FROM_CHILD) {
            Ok(Some(mut fr)) => {
                // A worker echoes the `WAITED` bit of a call's id.
                fr.id &= !wire::WAITED;
                Ok(fr)
            }
            Ok(None) => Err(End::Eof),
            Err(e) => Err(self.read_error(e)),
        }
    }

    /// What a failed read of the channel means.
    fn read_error(&self, e: io::Error) -> End {
        match e.kind() {
            // The worker died with our data unread: the same as an end.
            io::ErrorKind::ConnectionReset => End::Eof,
            io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => {
                self.protocol(e.to_string())
            }
            _ => End::Kill(self.error(|function, pid| Error::Io {
                function,
                pid,
                message: e.to_string(),
            })),
        }
    }

    /// Handles one frame by its kind; a frame that ends the worker (or
    /// one of an unknown kind) gives the end.
    fn on_frame(&self, fr: Frame) -> Result<(), End> {
        let text = || String::from_utf8_lossy(&fr.payload).into_owned();
        match fr.kind {
            wire::RESULT | wire::CALL_ERROR | wire::ABANDONED => self.on_answer(&fr),
            wire::EVENT => {
                self.on_event(&fr);
                Ok(())
            }
            wire::RETIRE => {
                if let Some(f) = &self.on_retire {
                    guarded("retire", || f());
                }
                Ok(())
            }
            wire::PANIC => Err(End::Exits(self.error(|function, pid| Error::Panicked {
                function,
                pid,
                message: text(),
            }))),
            wire::FATAL => Err(End::Exits(self.error(|function, pid| Error::Refused {
                function,
                pid,
                message: text(),
            }))),
            k => {
                let shown: Vec<u8> = fr.payload.iter().take(16).copied().collect();
                Err(self.protocol(format!(
                    "a frame of unknown kind 0x{k:02x} (id {}, {} octets, starting {:?})",
                    fr.id,
                    fr.payload.len(),
                    String::from_utf8_lossy(&shown)
                )))
            }
        }
    }

    /// The error `make` builds from the worker's function name and pid.
    fn error(&self, make: impl FnOnce(String, u32) -> Error) -> Error {
        make(self.function.clone(), self.pid)
    }

    /// Bad data from the worker.
    fn protocol(&self, detail: String) -> End {
        End::Kill(self.error(|function, pid| Error::Protocol {
            function,
            pid,
            detail,
        }))
    }

    /// A result, a call's error or an abandoned call: runs its callback.
    fn on_answer(&self, fr: &Frame) -> Result<(), End> {
        let sh = self;
        let Some(p) = sh.take_pending(fr.id) else {
            return Err(self.protocol(format!(
                "an answer to call {}, which is not outstanding",
                fr.id
            )));
        };
        let result = match fr.kind {
            wire::RESULT => sh.ser.decode(&fr.payload).map_err(|e| match e {
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
                function: sh.function.clone(),
                id: fr.id,
                message: String::from_utf8_lossy(&fr.payload).into_owned(),
            }),
            _ => Err(Error::Abandoned {
                function: sh.function.clone(),
                id: fr.id,
            }),
        };
        guarded("result", || (p.cb)(Answer::Done(result)));
        Ok(())
    }

    /// An event: to the handler of the call it belongs to (its frame's id),
    /// else to `on_event`, else to `on_error`.
    fn on_event(&self, fr: &Frame) {
        let sh = self;
        let per_call = match fr.id {
            0 => None,
            id => sh.st.lock().pending.get(&id).and_then(|p| p.events.clone()),
        };
        if per_call.is_none() && sh.on_event.is_none() {
            return sh.report(&Error::UnhandledEvent {
                function: sh.function.clone(),
            });
        }
        let value = match sh.ser.decode(&fr.payload) {
            Ok(v) => v,
            Err(e) => return sh.report(&e),
        };
        match (per_call, &sh.on_event) {
            (Some(sink), _) => {
                let origin = Origin {
                    pid: sh.pid,
                    worker: 0,
                };
                guarded("on_event", || sink(origin, value))
            }
            (None, Some(f)) => guarded("on_event", || f(value)),
            (None, None) => {}
        }
    }
}

impl<S: Serialiser> Reader<S> {
    /// The worker is gone or must go: stops sending, reaps it, fails every
    /// outstanding call (in id order) and runs `on_error` or `on_destroy`,
    /// then the exit hook, and marks the handle ended.
    ///
    /// A sync worker runs its calls one at a time, in order, so only the
    /// oldest outstanding call can have started: the others end with
    /// [`Answer::NotStarted`] (a pool sends them to another worker). Not so
    /// when the worker refused to serve (it would refuse them again), nor
    /// for the async backend (every call it read has started).
    fn finish(self, end: End) {
        let Reader {
            shared,
            child,
            on_exit,
            ..
        } = self;
        shared.outbox.abort();
        let grace = match end {
            End::Eof | End::Exits(_) => Duration::from_secs(2),
            End::Kill(_) => Duration::ZERO,
        };
        let (status, clean) = reap(child, grace);
        let mut st = shared.st.lock();
        let clean_end = st.pending.is_empty() && shared.dropped.load(Ordering::SeqCst) && clean;
        let error = shared.end_error(end, clean_end, status, st.pending.len());
        st.dead = Some(error.clone().unwrap_or(Error::Closed {
            function: shared.function.clone(),
        }));
        let pending: Vec<Pending<S>> = {
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
                let requeue =
                    shared.backend == Backend::Sync && !matches!(e, Error::Refused { .. });
                for (i, p) in pending.into_iter().enumerate() {
                    let answer = match i {
                        0 => Answer::Done(Err(e.clone())),
                        _ if requeue => Answer::NotStarted(e.clone()),
                        _ => Answer::Done(Err(e.clone())),
                    };
                    guarded("result", || (p.cb)(answer));
                }
                shared.report(e);
            }
            None => {
                if let Some(f) = &shared.on_destroy {
                    guarded("on_destroy", || f());
                }
            }
        }
        if let Some(f) = on_exit {
            guarded("exit", || f(error.as_ref()));
        }
        shared.st.lock().ended = true;
        shared.ended.notify_all();
    }
}

impl<S: Serialiser> Shared<S> {
    /// The error that ends the worker (`None`: a clean end, when the
    /// channel ended with nothing outstanding, every handle dropped and a
    /// successful exit).
    fn end_error(
        &self,
        end: End,
        clean_end: bool,
        status: String,
        outstanding: usize,
    ) -> Option<Error> {
        match end {
            End::Eof if clean_end => None,
            End::Eof => Some(Error::WorkerDied {
                function: self.function.clone(),
                pid: self.pid,
                status,
                outstanding,
            }),
            End::Exits(e) | End::Kill(e) => Some(e),
        }
    }
}

/// Waits up to `grace` for the child to exit, then kills it; always reaps.
pub(super) fn reap(mut child: Child, grace: Duration) -> (String, bool) {
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
