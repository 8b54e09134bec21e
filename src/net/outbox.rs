//! A connection's outgoing side, the one owner of the send path. Senders
//! encode packets into its buffer ([`transport::framing::encode_packet`]),
//! or write them to the socket at once when the connection is idle; the
//! reactor takes the buffer and writes it when the socket can take it.
//! The buffer has two lanes (`lanes.rs`): large packets queue apart and
//! leave one at a time, so a small packet to another port waits for at
//! most the one being written; the order per port holds.
//!
//! It bounds what may wait unsent (past the limit the connection is failed
//! like a lost one, and the buffer freed), lets blocking senders wait for
//! room below a high-water mark, and counts what went out.
//!
//! [`transport::framing::encode_packet`]: crate::transport::framing::encode_packet

use super::lanes::Lanes;
use crate::transport::framing::{encode_message, encode_packet};
use crate::transport::Framing;
use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Direct writes at most this often while nothing arrives: in a one-way
/// stream, packets gather in the buffer and leave in batches from the
/// reactor (a syscall per packet would cost more than the hand-off it
/// saves). Once bytes arrived since the last direct write (a request and
/// its reply, a ping-pong), the next one may go at once: at most one per
/// read of the reactor's.
const DIRECT_GAP: Duration = Duration::from_micros(25);

pub(crate) struct Outbox {
    pub(crate) token: mio::Token,
    framing: Framing,
    inner: Mutex<Inner>,
    /// Signalled when bytes left (for senders waiting for room) and when
    /// the connection closed.
    room: Condvar,
    /// Senders waiting on `room`: the reactor signals only then.
    waiters: AtomicUsize,
    /// A second handle on the socket: a sender that finds the connection
    /// idle writes itself instead of waking the reactor (one thread
    /// hand-off less per message when traffic is light).
    writer: Option<std::net::TcpStream>,
    /// Unsent bytes past which the connection is failed.
    limit: usize,
    /// Bytes the reactor took from the buffer and has not written yet.
    held: AtomicUsize,
    /// Bytes written to the socket after the handshake (ciphertext under
    /// TLS).
    written: AtomicU64,
    /// The handshake's last bytes, still to be written by the reactor:
    /// not counted in `written`.
    preamble: AtomicUsize,
    /// Set once the connection is closed or over its limit: later packets
    /// are dropped (the link's monitors fire).
    closed: AtomicBool,
    /// What arrived, counted by the reactor for [`Node::stats`]
    /// (crate::Node::stats).
    /// (On a cache line of its own: the reactor writes it for every read,
    /// while senders work on the fields above.)
    received: CachePadded<Received>,
    /// When the connection came up.
    since: Instant,
    /// The node's count of packets pushed (see `crate::busy`).
    sends: Arc<CachePadded<AtomicU64>>,
    /// The connection's reading side, for a sender to follow while it
    /// waits for an answer (`follow.rs`; set once the connection is up,
    /// never under TLS).
    follow: std::sync::OnceLock<std::sync::Weak<dyn crate::busy::Follow>>,
}

#[derive(Default)]
struct Received {
    packets: AtomicU64,
    bytes: AtomicU64,
    /// When bytes last arrived, as nanoseconds after `since`.
    last_ns: AtomicU64,
}

/// A connection's counters, for [`Node::stats`](crate::Node::stats).
pub(crate) struct Counts {
    pub(crate) unsent: usize,
    pub(crate) packets_sent: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) packets_received: u64,
    pub(crate) bytes_received: u64,
    pub(crate) last_heard: Duration,
    pub(crate) connected_for: Duration,
}

struct Inner {
    /// Encoded packets not yet taken by the reactor.
    lanes: Lanes,
    /// The reactor holds unwritten bytes: later bytes must queue behind.
    busy: bool,
    /// When a sender last wrote directly.
    last_direct: Instant,
    /// `received.bytes` at that moment.
    rx_at_direct: u64,
    /// Packets accepted for sending (counted under the lock senders hold
    /// anyway: no shared atomic on the hot path).
    packets: u64,
}

/// What became of a packet handed to [`Outbox::push`].
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Pushed {
    /// Buffered behind bytes the reactor knows of, or written: nothing to do.
    Done,
    /// Buffered: wake the reactor to write it.
    Wake,
    /// The unsent bytes would pass the limit: the buffer was freed and the
    /// connection must be failed (`unsent` bytes were waiting).
    Over { unsent: usize },
    /// The connection is closed or failing: the packet was dropped.
    Closed,
}

/// Why [`Outbox::wait_room`] returned without room.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoRoom {
    /// Still above the mark at the deadline, with this many bytes unsent.
    Timeout { unsent: usize },
    /// The connection closed meanwhile.
    Closed,
}

impl Outbox {
    pub(crate) fn new(
        token: mio::Token,
        framing: Framing,
        writer: Option<std::net::TcpStream>,
        limit: usize,
        sends: Arc<CachePadded<AtomicU64>>,
    ) -> Outbox {
        Outbox {
            token,
            framing,
            // Busy until the reactor wrote the rest of the handshake.
            inner: Mutex::new(Inner {
                lanes: Lanes::default(),
                busy: true,
                last_direct: Instant::now(),
                rx_at_direct: 0,
                packets: 0,
            }),
            room: Condvar::new(),
            waiters: AtomicUsize::new(0),
            writer,
            limit,
            held: AtomicUsize::new(0),
            written: AtomicU64::new(0),
            preamble: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            received: CachePadded::default(),
            since: Instant::now(),
            sends,
            follow: std::sync::OnceLock::new(),
        }
    }

    /// The connection's reading side, which a sender may follow.
    pub(crate) fn set_follow(&self, reader: std::sync::Weak<dyn crate::busy::Follow>) {
        let _ = self.follow.set(reader);
    }

    /// The senders' handle on the socket (`None` under TLS).
    pub(crate) fn socket(&self) -> Option<&std::net::TcpStream> {
        self.writer.as_ref()
    }

    /// When bytes last arrived (see [`received`](Self::received)).
    pub(crate) fn last_received(&self) -> Instant {
        self.since + Duration::from_nanos(self.received.last_ns.load(Ordering::Relaxed))
    }

    /// Encodes the packet `[name, msg...]` (and writes it at once if the
    /// connection is idle).
    pub(crate) fn push(&self, name: &str, msg: &[Value]) -> Pushed {
        self.push_with(name, |out| encode_packet(self.framing, name, msg, out))
    }

    /// [`push`](Self::push) of a message, read where it is (a compact
    /// message is not turned into a vector of values first).
    pub(crate) fn push_message(&self, name: &str, msg: &crate::Message) -> Pushed {
        self.push_with(name, |out| encode_message(self.framing, name, msg, out))
    }

    /// Appends the packet `encode` writes for port `name`.
    fn push_with(
        &self,
        name: &str,
        encode: impl FnOnce(&mut Vec<u8>) -> crate::transport::Result<()>,
    ) -> Pushed {
        let mut g = self.inner.lock();
        if self.closed.load(Ordering::Acquire) {
            return Pushed::Closed;
        }
        let idle = g.lanes.is_empty() && !g.busy;
        let start = g.lanes.small.len();
        if let Err(e) = encode(&mut g.lanes.small) {
            log::error!("cannot encode a packet for port {name:?}: {e}; dropped");
            return Pushed::Done;
        }
        g.packets += 1;
        self.sends.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = self.follow.get() {
            crate::busy::follow_next(f);
        }
        let unsent = g.lanes.len() + self.held.load(Ordering::Acquire);
        if unsent > self.limit {
            self.closed.store(true, Ordering::Release);
            g.lanes = Lanes::default();
            drop(g);
            self.room.notify_all();
            return Pushed::Over { unsent };
        }
        if !idle {
            // Into its lane (when idle, nothing is queued to overtake or
            // to be overtaken by: it stays, to be written at once).
            g.lanes.sort(name, start);
            // The reactor was woken for the bytes before, or will look
            // again when its own write completes.
            return Pushed::Done;
        }
        let Some(mut w) = self.writer.as_ref() else {
            return Pushed::Wake;
        };
        let now = Instant::now();
        let rx = self.received.bytes.load(Ordering::Relaxed);
        if rx == g.rx_at_direct && now.duration_since(g.last_direct) < DIRECT_GAP {
            return Pushed::Wake;
        }
        g.last_direct = now;
        g.rx_at_direct = rx;
        match std::io::Write::write(&mut w, &g.lanes.small) {
            Ok(n) => {
                self.written.fetch_add(n as u64, Ordering::Relaxed);
                g.lanes.small.drain(..n);
                if g.lanes.small.is_empty() {
                    Pushed::Done
                } else {
                    Pushed::Wake
                }
            }
            // Would block, or an error the reactor will see and handle.
            Err(_) => Pushed::Wake,
        }
    }

    /// Queues a no-op packet (`["",""]`): a peer that restarted (or
    /// closed its end) answers it with a reset, so a stale connection
    /// fails now instead of when TCP would notice.
    pub(crate) fn probe(&self) -> Pushed {
        self.push("", &[Value::from("")])
    }

    /// Queues a heartbeat: `["", "time", me, ""]` asks the peer's node port
    /// for its clock, to be sent to our node port as `["", now]`, a no-op.
    /// Every AEMP node answers it (Perl's too), and a Rust node from its
    /// reactor, so the answer says the peer's network is alive, however
    /// busy its callbacks are.
    pub(crate) fn heartbeat(&self, me: &str) -> Pushed {
        self.push("", &[Value::from("time"), Value::from(me), Value::from("")])
    }

    /// For the reactor: moves what to write next into `wbuf` (empty; its
    /// allocation goes to the senders' side): the whole small lane, or one
    /// large packet (see `lanes.rs`). The reactor takes again when it
    /// wrote it all, so small packets pushed meanwhile go first.
    pub(crate) fn take(&self, wbuf: &mut Vec<u8>) {
        let mut g = self.inner.lock();
        g.lanes.take(wbuf);
        g.busy = !wbuf.is_empty();
    }

    /// For the reactor: the connection came up with `n` handshake bytes
    /// still to write.
    pub(crate) fn set_preamble(&self, n: usize) {
        self.preamble.store(n, Ordering::Relaxed);
        self.held.store(n, Ordering::Release);
    }

    /// For the reactor: `n` more bytes were written, `held` are left in
    /// its hands.
    pub(crate) fn wrote(&self, n: usize, held: usize) {
        let pre = self.preamble.load(Ordering::Relaxed);
        let skip = pre.min(n);
        if skip > 0 {
            self.preamble.store(pre - skip, Ordering::Relaxed);
        }
        self.written.fetch_add((n - skip) as u64, Ordering::Relaxed);
        self.held.store(held, Ordering::Release);
        if self.waiters.load(Ordering::Acquire) > 0 {
            // Under the lock, so a sender between its check and its wait
            // cannot miss this.
            let _g = self.inner.lock();
            self.room.notify_all();
        }
    }

    /// For the reactor: what the reactor holds unwritten (without a write).
    pub(crate) fn set_held(&self, held: usize) {
        self.held.store(held, Ordering::Release);
    }

    /// The connection is closed: later packets are dropped and waiting
    /// senders return.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _g = self.inner.lock();
        self.room.notify_all();
    }

    /// Whether the connection is closed or over its limit.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Bytes waiting to be written: buffered (both lanes) and held by the
    /// reactor.
    pub(crate) fn unsent(&self) -> usize {
        self.inner.lock().lanes.len() + self.held.load(Ordering::Acquire)
    }

    /// For the reactor, or a thread following the connection: `n` bytes
    /// arrived at `at`.
    pub(crate) fn received(&self, n: usize, at: Instant) {
        let r = &self.received;
        r.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let ns = at.saturating_duration_since(self.since).as_nanos();
        r.last_ns
            .store(ns.try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// For the reactor: a packet arrived.
    pub(crate) fn received_packet(&self) {
        self.received.packets.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection's counters now.
    pub(crate) fn counts(&self) -> Counts {
        let r = &self.received;
        let age = self.since.elapsed();
        let last = Duration::from_nanos(r.last_ns.load(Ordering::Relaxed));
        Counts {
            unsent: self.unsent(),
            packets_sent: self.inner.lock().packets,
            bytes_sent: self.written.load(Ordering::Relaxed),
            packets_received: r.packets.load(Ordering::Relaxed),
            bytes_received: r.bytes.load(Ordering::Relaxed),
            last_heard: age.saturating_sub(last),
            connected_for: age,
        }
    }

    /// Waits until at most `mark` bytes are unsent, or `deadline`.
    pub(crate) fn wait_room(&self, mark: usize, deadline: Instant) -> Result<(), NoRoom> {
        let mut g = self.inner.lock();
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(NoRoom::Closed);
            }
            let unsent = g.lanes.len() + self.held.load(Ordering::Acquire);
            if unsent <= mark {
                return Ok(());
            }
            self.waiters.fetch_add(1, Ordering::AcqRel);
            let timed_out = self.room.wait_until(&mut g, deadline).timed_out();
            self.waiters.fetch_sub(1, Ordering::AcqRel);
            if timed_out {
                let unsent = g.lanes.len() + self.held.load(Ordering::Acquire);
                if unsent > mark {
                    return Err(NoRoom::Timeout { unsent });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Decoder;

    fn outbox(limit: usize) -> Outbox {
        let o = Outbox::new(
            mio::Token(9),
            Framing::Json,
            None,
            limit,
            Default::default(),
        );
        let mut w = Vec::new();
        o.take(&mut w); // the handshake is written: idle
        o
    }

    #[test]
    fn packets_are_encoded_in_order_and_taken_by_the_reactor() {
        let o = outbox(1 << 20);
        assert_eq!(o.push("p", &[Value::from(1)]), Pushed::Wake);
        assert_eq!(o.push("p", &[Value::from(2)]), Pushed::Done);
        let mut w = Vec::new();
        o.take(&mut w);
        let mut d = Decoder::new(Framing::Json);
        d.feed(&w);
        assert_eq!(
            d.next_packet().unwrap().unwrap(),
            [Value::from("p"), Value::from(1)]
        );
        assert_eq!(
            d.next_packet().unwrap().unwrap(),
            [Value::from("p"), Value::from(2)]
        );
        assert_eq!(o.unsent(), 0);
        o.set_held(w.len());
        assert_eq!(o.unsent(), w.len());
        o.wrote(w.len(), 0);
        let c = o.counts();
        assert_eq!((c.packets_sent, c.bytes_sent), (2, w.len() as u64));
        o.received(10, Instant::now());
        o.received_packet();
        let c = o.counts();
        assert_eq!((c.packets_received, c.bytes_received), (1, 10));
        assert!(c.last_heard <= c.connected_for);
    }

    #[test]
    fn direct_writes_are_spaced_unless_bytes_arrived_in_between() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let w = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut r, _) = l.accept().unwrap();
        r.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let o = Outbox::new(
            mio::Token(9),
            Framing::Json,
            Some(w),
            1 << 20,
            Default::default(),
        );
        let mut pre = Vec::new();
        o.take(&mut pre);
        // Long after the last direct write: written at once.
        std::thread::sleep(DIRECT_GAP);
        assert_eq!(o.push("p", &[Value::from(1)]), Pushed::Done);
        // Right after a direct write (as if that one had just ended), with
        // nothing arrived: left to the reactor (a stream's packets leave
        // in batches). A loaded machine may let the gap pass meanwhile;
        // then it is written too, which says nothing.
        let t = Instant::now();
        o.inner.lock().last_direct = t;
        let second = o.push("p", &[Value::from(2)]);
        if t.elapsed() < DIRECT_GAP {
            assert_eq!(second, Pushed::Wake);
        }
        // (The reactor takes what was left to it, and drops it here.)
        let mut rest = Vec::new();
        o.take(&mut rest);
        o.take(&mut Vec::new());
        // A reply arrived: the next packet is written at once, whatever
        // the gap.
        o.received(10, Instant::now());
        assert_eq!(o.push("p", &[Value::from(3)]), Pushed::Done);
        let mut d = Decoder::new(Framing::Json);
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while got.last() != Some(&Value::from(3)) {
            let n = std::io::Read::read(&mut r, &mut buf).unwrap();
            d.feed(&buf[..n]);
            while let Some(p) = d.next_packet().unwrap() {
                got.push(p[1].clone());
            }
        }
        let expect: &[i32] = if rest.is_empty() { &[1, 2, 3] } else { &[1, 3] };
        let expect: Vec<Value> = expect.iter().map(|&i| Value::from(i)).collect();
        assert_eq!(got, expect, "left to the reactor: {rest:?}");
    }

    #[test]
    fn passing_the_limit_frees_the_buffer_and_drops_what_follows() {
        let o = outbox(100);
        let big = Value::from("x".repeat(60));
        assert_eq!(o.push("p", std::slice::from_ref(&big)), Pushed::Wake);
        o.set_held(0);
        match o.push("p", std::slice::from_ref(&big)) {
            Pushed::Over { unsent } => assert!(unsent > 100, "{unsent}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(o.unsent(), 0);
        assert_eq!(o.push("p", &[big]), Pushed::Closed);
    }

    #[test]
    fn small_packets_go_first_and_the_limit_counts_both_lanes() {
        use super::super::lanes::BULK_MIN;
        let big = [Value::from("x".repeat(BULK_MIN))];
        let o = outbox(2 * BULK_MIN + 100);
        // Idle: written at once, or taken whole by the reactor.
        assert_eq!(o.push("a", &big), Pushed::Wake);
        let mut held = Vec::new();
        o.take(&mut held);
        o.set_held(held.len());
        // While the reactor writes it: a large packet to the bulk lane, a
        // small one to the small lane.
        assert_eq!(o.push("a", &big), Pushed::Done);
        assert_eq!(o.push("b", &[Value::from(1)]), Pushed::Done);
        let unsent = o.unsent();
        assert!(unsent > held.len() + BULK_MIN, "{unsent}");
        let soon = Instant::now() + Duration::from_millis(5);
        assert_eq!(
            o.wait_room(unsent - 1, soon),
            Err(NoRoom::Timeout { unsent })
        );
        // The reactor wrote the first: the small packet goes next.
        o.wrote(held.len(), 0);
        let mut w = Vec::new();
        o.take(&mut w);
        let mut d = Decoder::new(Framing::Json);
        d.feed(&w);
        assert_eq!(
            d.next_packet().unwrap().unwrap(),
            [Value::from("b"), Value::from(1)]
        );
        assert!(d.next_packet().unwrap().is_none());
        o.set_held(w.len());
        // Held, small lane and bulk lane count: two large packets queued
        // (the first left already) and the third passes the limit.
        assert_eq!(o.push("c", &big), Pushed::Done);
        match o.push("c", &big) {
            Pushed::Over { unsent } => assert!(unsent > 3 * BULK_MIN, "{unsent}"),
            other => panic!("{other:?}"),
        }
        o.set_held(0);
        assert_eq!(o.unsent(), 0);
        assert_eq!(o.push("b", &[Value::from(2)]), Pushed::Closed);
        assert_eq!(o.counts().packets_sent, 5);
    }

    #[test]
    fn a_waiting_sender_wakes_when_bytes_leave_or_at_its_deadline() {
        let o = std::sync::Arc::new(outbox(1 << 20));
        let _ = o.push("p", &[Value::from("y".repeat(1000))]);
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(matches!(o.wait_room(10, soon), Err(NoRoom::Timeout { .. })));
        let o2 = o.clone();
        let t =
            std::thread::spawn(move || o2.wait_room(10, Instant::now() + Duration::from_secs(30)));
        let mut w = Vec::new();
        o.take(&mut w);
        o.set_held(w.len());
        // Wakes on `wrote`, whenever the waiter got there.
        while o.waiters.load(Ordering::Acquire) == 0 && !t.is_finished() {
            std::thread::yield_now();
        }
        o.wrote(w.len(), 0);
        assert_eq!(t.join().unwrap(), Ok(()));
        o.close();
        assert_eq!(o.wait_room(10, Instant::now()), Err(NoRoom::Closed));
    }
}
