//! Framing between a parent and a worker, and the batching output buffer.
//!
//! Every message in either direction is one frame: a 9-octet header
//! (`kind: u8`, `id: u32` little-endian, `len: u32` little-endian) followed
//! by `len` octets of payload. A length field of 32 bits limits one message
//! to 4 GiB − 1.
//!
//! [`Outbox`] collects frames from any thread into one buffer; a writer
//! thread (or the caller, when the channel is idle) sends the whole buffer
//! with one system call, so many queued frames cost one write.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::busy::BusyWait;

/// Size of a frame header.
pub(crate) const HEADER: usize = 9;

/// Environment variable naming the channel's file descriptor in a worker.
pub(crate) const ENV_FD: &str = "AEMP_RPC_FD";
/// Environment variable telling a worker not to poll for the next call
/// before it blocks (set for pools' workers).
pub(crate) const ENV_NO_POLL: &str = "AEMP_RPC_NO_POLL";
/// Environment variable naming the extra file descriptor in a worker.
pub(crate) const ENV_EXTRA_FD: &str = "AEMP_RPC_EXTRA_FD";

/// Parent → child: start parameters (function, serialiser, backend, init).
pub(crate) const START: u8 = b'S';
/// Parent → child: a call with arguments.
pub(crate) const CALL: u8 = b'C';
/// The top bit of a call's id: its caller waits for the answer
/// (`call_wait`), so a worker that does not poll for its next call (a
/// pool's) polls after this one, as the caller's next call is likely to
/// follow the answer within microseconds. A worker echoes a call's id as
/// it came, in every frame about the call, and the parent reads ids
/// without this bit; so a worker that does not know the bit serves the
/// call all the same (the protocol stays `aemp-rpc/1`). The parent's
/// own ids stay below it.
pub(crate) const WAITED: u32 = 1 << 31;
/// Child → parent: the result of a call.
pub(crate) const RESULT: u8 = b'R';
/// Child → parent: an event.
pub(crate) const EVENT: u8 = b'E';
/// Child → parent: one call failed (payload: message).
pub(crate) const CALL_ERROR: u8 = b'D';
/// Child → parent: an async call's `Done` was dropped.
pub(crate) const ABANDONED: u8 = b'A';
/// Child → parent: a panic (payload: message); the child exits next.
pub(crate) const PANIC: u8 = b'P';
/// Child → parent: the child refuses to serve (payload: message).
pub(crate) const FATAL: u8 = b'F';
/// Child → parent: the worker retires (pools stop sending it work).
pub(crate) const RETIRE: u8 = b'T';

/// A START frame's backend: sync.
pub(crate) const SYNC: &[u8] = b"sync";
/// A START frame's backend: sync, each result sent before the next call
/// starts.
pub(crate) const SYNC_FLUSH: &[u8] = b"sync-flush";
/// A START frame's backend: async.
pub(crate) const ASYNC: &[u8] = b"async";

/// Magic first string of a START frame: names the protocol and its version.
pub(crate) const MAGIC: &[u8] = b"aemp-rpc/1";

/// A new frame buffer with room for the header, ready for a payload.
pub(crate) fn frame_start(capacity: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER + capacity);
    f.resize(HEADER, 0);
    f
}

/// Fills in the header of a frame built with [`frame_start`]. Fails when the
/// payload exceeds the 4 GiB limit.
pub(crate) fn frame_finish(
    frame: &mut [u8],
    kind: u8,
    id: u32,
    what: &'static str,
) -> Result<(), super::Error> {
    let len = frame.len() - HEADER;
    let len32 = u32::try_from(len).map_err(|_| super::Error::TooLarge { what, len })?;
    frame[0] = kind;
    frame[1..5].copy_from_slice(&id.to_le_bytes());
    frame[5..9].copy_from_slice(&len32.to_le_bytes());
    Ok(())
}

/// Builds a whole frame from a payload slice.
pub(crate) fn frame(kind: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = frame_start(payload.len());
    f.extend_from_slice(payload);
    // Payloads given as slices here are short messages; cap them anyway.
    if frame_finish(&mut f, kind, id, "message").is_err() {
        f.truncate(HEADER);
        let _ = frame_finish(&mut f, kind, id, "message");
    }
    f
}

/// Sets the id of a finished frame.
pub(crate) fn set_id(frame: &mut [u8], id: u32) {
    frame[1..5].copy_from_slice(&id.to_le_bytes());
}

/// One frame as read.
pub(crate) struct Frame {
    pub kind: u8,
    pub id: u32,
    pub payload: Vec<u8>,
}

/// Kinds a worker may send.
pub(crate) const FROM_CHILD: &[u8] = &[RESULT, EVENT, CALL_ERROR, ABANDONED, PANIC, FATAL, RETIRE];
/// Kinds a parent may send.
pub(crate) const FROM_PARENT: &[u8] = &[START, CALL];

/// Reads one frame whose kind must be one of `kinds`. `Ok(None)` is a clean
/// end of stream at a frame boundary; an end inside a frame is an
/// `UnexpectedEof` error, an unknown kind an `InvalidData` error (checked
/// before the payload is read, so garbage cannot make us wait for data).
pub(crate) fn read_frame<R: Read>(r: &mut BufReader<R>, kinds: &[u8]) -> io::Result<Option<Frame>> {
    let mut head = [0u8; HEADER];
    // Detect a clean EOF before the first header byte.
    if r.fill_buf()?.is_empty() {
        return Ok(None);
    }
    r.read_exact(&mut head)
        .map_err(|e| truncated(e, "frame header"))?;
    let kind = head[0];
    let id = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let len = u32::from_le_bytes([head[5], head[6], head[7], head[8]]) as usize;
    if !kinds.contains(&kind) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a frame of unknown kind 0x{kind:02x} (header octets {:?})",
                String::from_utf8_lossy(&head)
            ),
        ));
    }
    // Grow the buffer as data arrives, so a bogus length cannot make us
    // allocate 4 GiB up front.
    let mut payload = Vec::with_capacity(len.min(16 << 20));
    let got = r.by_ref().take(len as u64).read_to_end(&mut payload)?;
    if got < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "channel closed inside a frame (kind 0x{kind:02x}): got {got} of {len} payload octets"
            ),
        ));
    }
    Ok(Some(Frame { kind, id, payload }))
}

/// Like [`read_frame`], but when nothing is buffered it first polls the
/// socket for input (see [`crate::busy`]) before it blocks in `read`: in a
/// round trip the next frame comes within microseconds, and waking a
/// thread that sleeps in `read` costs more than that.
pub(crate) fn read_frame_polling(
    r: &mut BufReader<Chan>,
    kinds: &[u8],
    busy: &mut BusyWait,
) -> io::Result<Option<Frame>> {
    if r.buffer().is_empty() {
        let start = Instant::now();
        let mut failed = None;
        let polled = busy.spin(start, None, || match try_fill(r) {
            Ok(Fill::Nothing) => false,
            Ok(Fill::Data | Fill::End) => true,
            Err(e) => {
                failed = Some(e);
                true
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        // Not ready after polling: block until the first octet comes.
        if !polled && !r.fill_buf()?.is_empty() {
            busy.slept(start);
        }
    }
    read_frame(r, kinds)
}

/// A channel's socket as its reader sees it: reads block, but
/// [`try_fill`] reads without blocking, so a poll for input that finds
/// some has read it too (a peek and then a read took two system calls).
pub(crate) struct Chan {
    sock: UnixStream,
    dont_wait: bool,
}

impl Chan {
    pub(crate) fn new(sock: UnixStream) -> Chan {
        Chan {
            sock,
            dont_wait: false,
        }
    }
}

impl Read for Chan {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.dont_wait {
            return (&self.sock).read(buf);
        }
        // SAFETY: a read into `buf` (at most its length) from a socket we
        // own.
        let n = unsafe {
            libc::recv(
                self.sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl AsRawFd for Chan {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// What [`try_fill`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Octets are buffered.
    Data,
    /// Nothing yet.
    Nothing,
    /// The channel ended.
    End,
}

/// Fills `r`'s buffer, if empty, with what the socket holds now, without
/// blocking.
pub(crate) fn try_fill(r: &mut BufReader<Chan>) -> io::Result<Fill> {
    if !r.buffer().is_empty() {
        return Ok(Fill::Data);
    }
    r.get_mut().dont_wait = true;
    let res = r.fill_buf().map(|b| b.is_empty());
    r.get_mut().dont_wait = false;
    match res {
        Ok(false) => Ok(Fill::Data),
        Ok(true) => Ok(Fill::End),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(Fill::Nothing)
        }
        Err(e) => Err(e),
    }
}

/// Whether a read of the socket `fd` would not block: it has data, has
/// ended, or has an error (which the read then reports).
pub(crate) fn input_waiting(fd: RawFd) -> bool {
    let mut octet = 0u8;
    // SAFETY: a one-octet peek into a local buffer, on a socket the caller
    // holds open.
    let r = unsafe {
        libc::recv(
            fd,
            (&mut octet as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    r >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock
}

/// Whether `buf` starts with a whole frame (header and payload).
pub(crate) fn whole_frame(buf: &[u8]) -> bool {
    buf.len() >= HEADER
        && (buf.len() - HEADER) as u64
            >= u64::from(u32::from_le_bytes([buf[5], buf[6], buf[7], buf[8]]))
}

fn truncated(e: io::Error, what: &str) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(e.kind(), format!("channel closed inside a {what}"))
    } else {
        e
    }
}

struct OutState {
    buf: Vec<u8>,
    /// Someone (writer thread or a direct flusher) is sending right now.
    busy: bool,
    /// No more frames will come; send what is there, then half-close.
    closed: bool,
    /// Sending failed (peer gone); frames are dropped from now on.
    failed: bool,
    /// The writer thread has exited.
    finished: bool,
}

/// A shared output buffer in front of one socket.
pub(crate) struct Outbox {
    st: Mutex<OutState>,
    cv: Condvar,
    sock: UnixStream,
}

impl Outbox {
    /// Wraps the sending side of `sock` and starts its writer thread.
    pub(crate) fn start(sock: UnixStream, name: &str) -> io::Result<Arc<Outbox>> {
        let ob = Arc::new(Outbox {
            st: Mutex::new(OutState {
                buf: Vec::new(),
                busy: false,
                closed: false,
                failed: false,
                finished: false,
            }),
            cv: Condvar::new(),
            sock,
        });
        let w = ob.clone();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || w.run_writer())?;
        Ok(ob)
    }

    /// Appends a finished frame. With `wake`, the writer thread is woken to
    /// send it; without, the caller promises to call [`Outbox::flush_now`]
    /// soon. Returns false when the channel is closed or broken.
    pub(crate) fn push(&self, frame: Vec<u8>, wake: bool) -> bool {
        let mut st = self.st.lock();
        if st.closed || st.failed {
            return false;
        }
        if st.buf.is_empty() && frame.len() > st.buf.capacity() {
            st.buf = frame;
        } else {
            st.buf.extend_from_slice(&frame);
        }
        if wake {
            self.cv.notify_all();
        }
        true
    }

    /// Tries to send everything buffered right now from the calling thread,
    /// without blocking; whatever does not fit is left to the writer thread.
    pub(crate) fn flush_now(&self) {
        let mut st = self.st.lock();
        if st.busy || st.buf.is_empty() || st.failed {
            return;
        }
        st.busy = true;
        let mut data = std::mem::take(&mut st.buf);
        drop(st);
        let (sent, err) = send_all(self.sock.as_raw_fd(), &data, false);
        let mut st = self.st.lock();
        st.busy = false;
        if err {
            st.failed = true;
            st.buf.clear();
        } else if sent < data.len() {
            data.drain(..sent);
            data.extend_from_slice(&st.buf);
            st.buf = data;
        } else if st.buf.is_empty() && data.capacity() <= 1 << 20 {
            data.clear();
            st.buf = data;
        }
        // Wake the writer only if it has something to do: a needless wake
        // per round trip costs a context switch on a busy machine.
        if !st.buf.is_empty() || st.closed || st.failed {
            self.cv.notify_all();
        }
    }

    /// Sends everything buffered before returning (from this thread, or by
    /// waiting for the writer thread), so the frames pushed so far are with
    /// the kernel and reach the peer even if this process dies next.
    pub(crate) fn flush_wait(&self) {
        self.flush_now();
        let mut st = self.st.lock();
        while (st.busy || !st.buf.is_empty()) && !st.failed {
            self.cv.notify_all();
            // Bounded: a direct flusher does not always wake waiters.
            self.cv.wait_for(&mut st, Duration::from_millis(5));
        }
    }

    /// No more frames: the writer sends what is buffered, then half-closes.
    pub(crate) fn close(&self) {
        let mut st = self.st.lock();
        st.closed = true;
        self.cv.notify_all();
    }

    /// The peer is gone: drop buffered frames and stop the writer.
    pub(crate) fn abort(&self) {
        let mut st = self.st.lock();
        st.failed = true;
        st.closed = true;
        st.buf.clear();
        self.cv.notify_all();
    }

    /// Waits until the writer thread has sent everything and exited, or the
    /// time-out passes. Returns whether it finished.
    pub(crate) fn wait_finished(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Some(mut st) = self.st.try_lock_for(timeout) else {
            return false;
        };
        while !st.finished {
            if self.cv.wait_until(&mut st, deadline).timed_out() {
                return st.finished;
            }
        }
        true
    }

    fn run_writer(self: Arc<Self>) {
        let fd = self.sock.as_raw_fd();
        let mut spare: Vec<u8> = Vec::new();
        let mut st = self.st.lock();
        loop {
            if st.failed {
                break;
            }
            if st.busy || st.buf.is_empty() {
                if st.closed && !st.busy && st.buf.is_empty() {
                    break;
                }
                self.cv.wait(&mut st);
                continue;
            }
            st.busy = true;
            std::mem::swap(&mut st.buf, &mut spare);
            let (_, err) = MutexGuard::unlocked(&mut st, || send_all(fd, &spare, true));
            spare.clear();
            if spare.capacity() > 4 << 20 {
                spare = Vec::new();
            }
            st.busy = false;
            if err {
                st.failed = true;
                st.buf.clear();
            }
            self.cv.notify_all();
        }
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
        st.finished = true;
        self.cv.notify_all();
    }
}

/// Sends `data` on a socket without raising SIGPIPE. Blocking mode sends all
/// of it; non-blocking mode stops when the socket is full. Returns the number
/// of octets sent and whether a hard error (peer gone) happened.
fn send_all(fd: RawFd, data: &[u8], blocking: bool) -> (usize, bool) {
    let flags = libc::MSG_NOSIGNAL | if blocking { 0 } else { libc::MSG_DONTWAIT };
    let mut sent = 0;
    while sent < data.len() {
        let rest = &data[sent..];
        // Never hand the kernel more than 1 GiB in one call.
        let n = rest.len().min(1 << 30);
        // SAFETY: `rest` is a valid slice of at least `n` octets and `fd` is a
        // socket owned by the Outbox for the duration of this call.
        let r = unsafe { libc::send(fd, rest.as_ptr().cast(), n, flags) };
        if r >= 0 {
            sent += r as usize;
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock if !blocking => return (sent, false),
            _ => {
                log::debug!("rpc: send failed: {e}");
                return (sent, true);
            }
        }
    }
    (sent, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_fill_reads_what_is_there_without_blocking_and_sees_the_end() {
        use std::io::Write;
        let (a, b) = UnixStream::pair().unwrap();
        let mut r = BufReader::new(Chan::new(b));
        assert_eq!(try_fill(&mut r).unwrap(), Fill::Nothing);
        (&a).write_all(b"abc").unwrap();
        assert_eq!(try_fill(&mut r).unwrap(), Fill::Data);
        assert_eq!(r.buffer(), b"abc");
        // Reads after it block again (here: they find the rest).
        r.consume(3);
        (&a).write_all(b"de").unwrap();
        let mut two = [0u8; 2];
        r.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"de");
        drop(a);
        assert_eq!(try_fill(&mut r).unwrap(), Fill::End);
    }

    #[test]
    fn frames_round_trip_through_the_outbox() {
        let (a, b) = UnixStream::pair().unwrap();
        let ob = Outbox::start(a, "test-writer").unwrap();
        for i in 0..1000u32 {
            assert!(ob.push(frame(CALL, i, &i.to_le_bytes()), i % 7 == 0));
            if i % 3 == 0 {
                ob.flush_now();
            }
        }
        ob.push(frame(RESULT, 5, &vec![7u8; 300_000]), true);
        ob.close();
        let mut r = BufReader::new(b);
        for i in 0..1000u32 {
            let f = read_frame(&mut r, FROM_PARENT).unwrap().unwrap();
            assert_eq!(
                (f.kind, f.id, f.payload),
                (CALL, i, i.to_le_bytes().to_vec())
            );
        }
        let f = read_frame(&mut r, FROM_CHILD).unwrap().unwrap();
        assert_eq!(f.payload.len(), 300_000);
        assert!(read_frame(&mut r, FROM_CHILD).unwrap().is_none());
        assert!(ob.wait_finished(Duration::from_secs(5)));
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let data = [CALL, 1, 0, 0, 0, 10, 0, 0, 0, 1, 2];
        let mut r = BufReader::new(&data[..]);
        let e = read_frame(&mut r, FROM_PARENT).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let mut r = BufReader::new(&data[..4]);
        assert!(read_frame(&mut r, FROM_PARENT).is_err());
        let mut r = BufReader::new(&b"hello, this is not a frame"[..]);
        let e = read_frame(&mut r, FROM_CHILD).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("0x68"), "{e}");
    }
}
