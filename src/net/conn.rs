//! One TCP connection as the reactor sees it: TCP connect, handshake,
//! then the data phase; its pending writes. And [`Conns`], the reactor's
//! table of them by mio token. Everything here runs on the reactor thread.

use super::follow::Reader;
use super::outbox::Outbox;
use super::remote::Remote;
use super::tls::Tls;
use crate::transport::Handshake;
use mio::net::TcpStream;
use mio::Token;
use slab::Slab;
use std::io::{self, Read, Write};
use std::sync::Arc;

pub(crate) enum Phase {
    Handshake(Box<Handshake>),
    Up {
        remote: Arc<Remote>,
        out: Arc<Outbox>,
        /// The reading side, shared with a thread that may follow it
        /// (`follow.rs`).
        reader: Arc<Reader>,
    },
    /// A data connection's handshake completed: it leaves the reactor at
    /// the end of this event (`handoff.rs`), with what arrived after the
    /// handshake (plaintext).
    Data {
        peer: String,
        leftover: Vec<u8>,
    },
}

pub(crate) struct Conn {
    /// Its token in [`Conns`] and the poll.
    pub(crate) token: Token,
    pub(crate) sock: TcpStream,
    /// The peer's address, for log lines.
    pub(crate) addr: String,
    /// Outgoing: the node we meant to reach (`None` for `Node::connect`);
    /// `None` for accepted connections.
    pub(crate) dialed: Option<Option<Arc<Remote>>>,
    /// The outgoing TCP connect has not completed yet.
    pub(crate) tcp_connecting: bool,
    pub(crate) phase: Phase,
    /// The TLS session, once started.
    pub(crate) tls: Option<Box<Tls>>,
    /// The peer, once its greeting passed.
    pub(crate) peer: Option<Arc<Remote>>,
    /// A data connection's ID (`handoff.rs`): set when we dial one, or
    /// when the peer greets with `aemp-dataconn`.
    pub(crate) dataconn: Option<String>,
    /// Bytes the reactor is writing; `wpos` of them are written.
    pub(crate) wbuf: Vec<u8>,
    pub(crate) wpos: usize,
    /// When bytes last arrived.
    pub(crate) last_rx: std::time::Instant,
    /// When the latest heartbeat probe went out (see the reactor's
    /// `heartbeats`).
    pub(crate) heartbeat_at: Option<std::time::Instant>,
    /// When the node last tried to connect again while this connection
    /// was up, and it was probed (see the reactor's `greeting`).
    pub(crate) probed: Option<std::time::Instant>,
}

/// At most about this many bytes are read from one connection per call
/// of [`Conn::read`].
const READ_BUDGET: usize = 1 << 20;

/// What a read produced.
pub(crate) enum ReadState {
    /// Read until the socket would block.
    Open,
    /// The read budget ran out; more may be buffered in the socket.
    More,
    Eof,
}

impl Conn {
    /// Who the peer is, for log lines: its node ID once known, else its
    /// address.
    pub(crate) fn who(&self) -> String {
        match &self.peer {
            Some(r) => format!("{} ({})", r.id, self.addr),
            None => self.addr.clone(),
        }
    }

    /// When bytes last arrived, read by the reactor or by a thread
    /// following the connection (`follow.rs`).
    pub(crate) fn last_heard(&self) -> std::time::Instant {
        match &self.phase {
            Phase::Up { out, .. } => self.last_rx.max(out.last_received()),
            _ => self.last_rx,
        }
    }

    /// Queues handshake bytes, encrypted once TLS runs.
    pub(crate) fn send_plain(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self.tls.as_mut() {
            Some(tls) if tls.is_ready() => {
                tls.write(bytes)?;
                let cipher = tls.take_output();
                self.wbuf.extend_from_slice(&cipher);
            }
            _ => self.wbuf.extend_from_slice(bytes),
        }
        Ok(())
    }

    /// Writes pending bytes, refilling from the shared outgoing buffer,
    /// until everything is written or the socket would block.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.flush_some(usize::MAX).map(|_| ())
    }

    /// [`Conn::flush`], but it stops once `budget` bytes are written (the
    /// last write may take it past): `Ok(true)` when it stopped so with
    /// bytes left to write; the socket may still take them, so no
    /// writable event will come and the caller must come back.
    pub(crate) fn flush_some(&mut self, budget: usize) -> io::Result<bool> {
        if self.tcp_connecting {
            return Ok(false);
        }
        let mut left = budget;
        loop {
            if self.wpos == self.wbuf.len() {
                self.wbuf.clear();
                self.wpos = 0;
                if let Phase::Up { out, .. } = &self.phase {
                    match self.tls.as_mut() {
                        None => out.take(&mut self.wbuf),
                        Some(tls) => {
                            let mut plain = Vec::new();
                            out.take(&mut plain);
                            if !plain.is_empty() {
                                tls.write(&plain).map_err(io::Error::other)?;
                                self.wbuf = tls.take_output();
                            }
                        }
                    }
                    out.set_held(self.wbuf.len());
                }
                if self.wbuf.is_empty() {
                    if let Phase::Up { reader, .. } = &self.phase {
                        reader.want_write(false);
                    }
                    return Ok(false);
                }
            }
            if left == 0 {
                return Ok(true);
            }
            match self.sock.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    left = left.saturating_sub(n);
                    self.wpos += n;
                    if let Phase::Up { out, .. } = &self.phase {
                        out.wrote(n, self.wbuf.len() - self.wpos);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Phase::Up { reader, .. } = &self.phase {
                        reader.want_write(true);
                    }
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads what is available, passing each chunk to `f`.
    /// `drain`: read until the socket says it would block (needed when
    /// the peer closed: its end-of-stream raises no further event).
    pub(crate) fn read(
        &mut self,
        buf: &mut [u8],
        drain: bool,
        mut f: impl FnMut(&mut Conn, &[u8]) -> Result<(), String>,
    ) -> Result<ReadState, String> {
        // A budget per turn keeps one busy peer from starving the others;
        // the reactor comes back for `More` (mio is edge-triggered).
        let mut left = READ_BUDGET;
        while left > 0 {
            match self.sock.read(buf) {
                Ok(0) => return Ok(ReadState::Eof),
                Ok(n) => {
                    left = left.saturating_sub(n);
                    self.last_rx = std::time::Instant::now();
                    f(self, &buf[..n])?;
                    // A short read emptied the socket's receive queue: the
                    // next arrival raises a new event (as tokio assumes
                    // too), so skip the read that would only say so.
                    if n < buf.len() && !drain {
                        return Ok(ReadState::Open);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadState::Open),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read error: {e}")),
            }
        }
        Ok(ReadState::More)
    }
}

/// The first connection token; those below are the waker's and the
/// listeners'.
pub(crate) const FIRST_CONN: usize = 1 << 16;

/// How many low bits of a connection's token hold its slab key (offset by
/// [`FIRST_CONN`]); the bits above hold a serial number.
const KEY_BITS: u32 = if usize::BITS >= 64 { 32 } else { 24 };
const KEY_MASK: usize = (1 << KEY_BITS) - 1;

/// The reactor's connections by token, in a slab.
///
/// A closed connection's slot is reused, but not its token: a token is the
/// slot's key (offset by [`FIRST_CONN`]) with a serial number above it,
/// and every lookup checks the connection's own token. So a stale token
/// (an `Outbox`'s, a queued `Cmd::Flush` or `Cmd::OverLimit`, a dial's
/// last attempt, an entry of the reactor's `again`) finds nothing, never
/// the slot's next connection. Serial numbers wrap after 2^32 connections
/// (2^8 on 32-bit targets); a stale token would have to outlive that many
/// to meet a connection in its old slot.
///
/// While the reactor handles an event of a connection in its handshake,
/// the connection is lent out of its slot ([`Conns::lend`]): the slot stays
/// reserved and lookups meanwhile find nothing, as if it were closed.
pub(crate) struct Conns {
    slab: Slab<Option<Conn>>,
    serial: usize,
}

impl Conns {
    pub(crate) fn new() -> Conns {
        Conns {
            slab: Slab::new(),
            serial: 0,
        }
    }

    fn key(token: Token) -> usize {
        (token.0 & KEY_MASK).wrapping_sub(FIRST_CONN)
    }

    /// The token of the connection [`Conns::insert`] adds next; `None` if
    /// the table is full.
    pub(crate) fn next_token(&mut self) -> Option<Token> {
        let low = FIRST_CONN + self.slab.vacant_key();
        if low > KEY_MASK {
            return None;
        }
        self.serial = self.serial.wrapping_add(1);
        Some(Token(self.serial << KEY_BITS | low))
    }

    /// Adds `conn`, whose token came from [`Conns::next_token`] (with no
    /// connection added or removed since).
    pub(crate) fn insert(&mut self, conn: Conn) {
        debug_assert_eq!(Conns::key(conn.token), self.slab.vacant_key());
        self.slab.insert(Some(conn));
    }

    /// The slot of `token`, if the connection in it has that token.
    fn slot(&mut self, token: Token) -> Option<&mut Option<Conn>> {
        self.slab
            .get_mut(Conns::key(token))
            .filter(|slot| slot.as_ref().is_some_and(|c| c.token == token))
    }

    pub(crate) fn get(&self, token: Token) -> Option<&Conn> {
        let conn = self.slab.get(Conns::key(token))?.as_ref()?;
        (conn.token == token).then_some(conn)
    }

    pub(crate) fn get_mut(&mut self, token: Token) -> Option<&mut Conn> {
        self.slot(token)?.as_mut()
    }

    /// Takes the connection out for good (to close it).
    pub(crate) fn remove(&mut self, token: Token) -> Option<Conn> {
        let conn = self.slot(token)?.take();
        self.slab.remove(Conns::key(token));
        conn
    }

    /// Takes the connection out while an event is handled, keeping its
    /// slot: it goes back with [`Conns::put_back`], or the slot is freed
    /// with [`Conns::release`].
    pub(crate) fn lend(&mut self, token: Token) -> Option<Conn> {
        self.slot(token)?.take()
    }

    /// A lent connection goes back into its slot.
    pub(crate) fn put_back(&mut self, conn: Conn) {
        if let Some(slot) = self.slab.get_mut(Conns::key(conn.token)) {
            debug_assert!(slot.is_none());
            *slot = Some(conn);
        }
    }

    /// Frees the slot of a lent connection (it is closing).
    pub(crate) fn release(&mut self, token: Token) {
        let key = Conns::key(token);
        if self.slab.get(key).is_some_and(Option::is_none) {
            self.slab.remove(key);
        }
    }

    /// The connections (not those lent out).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.slab.iter().filter_map(|(_, slot)| slot.as_ref())
    }

    /// Takes every connection out.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Conn> + '_ {
        self.slab.drain().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Config, Handshake};
    use std::time::Instant;

    /// A connection (to a listener nobody accepts from) with `token`.
    fn conn(to: std::net::SocketAddr, token: Token) -> Conn {
        let cfg = Config::new("test");
        Conn {
            token,
            sock: TcpStream::connect(to).unwrap(),
            addr: to.to_string(),
            dialed: None,
            tcp_connecting: true,
            phase: Phase::Handshake(Box::new(Handshake::new(cfg, Instant::now()))),
            tls: None,
            peer: None,
            dataconn: None,
            wbuf: Vec::new(),
            wpos: 0,
            last_rx: Instant::now(),
            heartbeat_at: None,
            probed: None,
        }
    }

    /// Adds a connection to `to` to `conns`; returns its token.
    fn add(conns: &mut Conns, to: std::net::SocketAddr) -> Token {
        let token = conns.next_token().unwrap();
        conns.insert(conn(to, token));
        token
    }

    /// A flush with a budget stops once it is spent, saying that bytes
    /// are left (the reactor looks at its other events, then comes
    /// back); called again, it writes everything, in order.
    #[test]
    fn a_flush_stops_at_its_budget_and_says_what_is_left() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = conn(l.local_addr().unwrap(), Token(FIRST_CONN));
        let (mut peer, _) = l.accept().unwrap();
        while c.sock.peer_addr().is_err() {
            std::thread::yield_now();
        }
        c.tcp_connecting = false;
        // Small socket buffers and nobody reading yet: the kernel cannot
        // take the 8 MiB in one write.
        socket2::SockRef::from(&peer)
            .set_recv_buffer_size(64 << 10)
            .unwrap();
        socket2::SockRef::from(&c.sock)
            .set_send_buffer_size(64 << 10)
            .unwrap();
        let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        c.wbuf = data.clone();
        // A budget of one byte: one write.
        assert!(c.flush_some(1).unwrap(), "bytes are left");
        assert!(c.wpos > 0 && c.wpos < data.len(), "one write: {}", c.wpos);
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).unwrap();
            got
        });
        // Again with a budget, until everything is out (a `false` with
        // bytes left: the socket would block until the reader reads).
        while !c.wbuf.is_empty() {
            let before = c.wpos;
            let more = c.flush_some(64 << 10).unwrap();
            if more {
                assert!(c.wpos > before);
            } else {
                std::thread::yield_now();
            }
        }
        drop(c);
        assert!(reader.join().unwrap() == data, "all bytes, in order");
    }

    #[test]
    fn tokens_map_to_keys_and_serials_change() {
        let mut conns = Conns::new();
        let a = conns.next_token().unwrap();
        let b = conns.next_token().unwrap();
        // Nothing was inserted: the same slot, another serial.
        assert_eq!(Conns::key(a), 0);
        assert_eq!(Conns::key(b), 0);
        assert_ne!(a, b);
        assert!(a.0 >= FIRST_CONN && b.0 >= FIRST_CONN);
        assert!(conns.get(a).is_none());
    }

    #[test]
    fn a_stale_token_never_finds_the_slot_s_next_connection() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut conns = Conns::new();
        let old = add(&mut conns, l.local_addr().unwrap());
        assert!(conns.get(old).is_some());
        assert!(conns.remove(old).is_some());
        assert!(conns.remove(old).is_none());
        // The slot is reused, under a new token.
        let new = add(&mut conns, l.local_addr().unwrap());
        assert_eq!(Conns::key(new), Conns::key(old));
        assert!(conns.get(old).is_none());
        assert!(conns.get_mut(old).is_none());
        assert!(conns.lend(old).is_none());
        assert!(conns.remove(old).is_none());
        assert_eq!(conns.get(new).map(|c| c.token), Some(new));
    }

    #[test]
    fn a_lent_connection_keeps_its_slot() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut conns = Conns::new();
        let a = add(&mut conns, l.local_addr().unwrap());
        let lent = conns.lend(a).unwrap();
        // Meanwhile it is not found, and its slot is not given away.
        assert!(conns.get(a).is_none());
        assert_eq!(conns.iter().count(), 0);
        let b = add(&mut conns, l.local_addr().unwrap());
        assert_ne!(Conns::key(b), Conns::key(a));
        conns.put_back(lent);
        assert_eq!(conns.iter().count(), 2);
        // Lent again and closed: the slot is freed.
        let lent = conns.lend(a).unwrap();
        conns.release(a);
        assert_eq!(conns.next_token().map(Conns::key), Some(Conns::key(a)));
        drop(lent);
        assert_eq!(conns.drain().count(), 1);
    }
}
