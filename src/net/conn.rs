//! One TCP connection as the reactor sees it: TCP connect, handshake,
//! then the data phase; its pending writes.

use super::outbox::Outbox;
use super::remote::Remote;
use super::tls::Tls;
use crate::transport::{Decoder, Handshake};
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::sync::Arc;

pub(crate) enum Phase {
    Handshake(Box<Handshake>),
    Up {
        remote: Arc<Remote>,
        out: Arc<Outbox>,
        dec: Box<Decoder>,
    },
}

pub(crate) struct Conn {
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
        if self.tcp_connecting {
            return Ok(());
        }
        loop {
            if self.wpos == self.wbuf.len() {
                self.wbuf.clear();
                self.wpos = 0;
                if self.wbuf.capacity() > 4 << 20 {
                    self.wbuf = Vec::new();
                }
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
                    return Ok(());
                }
            }
            match self.sock.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wpos += n;
                    if let Phase::Up { out, .. } = &self.phase {
                        out.wrote(n, self.wbuf.len() - self.wpos);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
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
        for _ in 0..16 {
            match self.sock.read(buf) {
                Ok(0) => return Ok(ReadState::Eof),
                Ok(n) => {
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
