//! One TCP connection as the reactor sees it: TCP connect, handshake,
//! then the data phase; its pending writes; packet encoding.

use super::remote::{Out, Remote};
use super::tls::Tls;
use crate::transport::{Decoder, Framing, Handshake};
use mio::net::TcpStream;
use serde_json::Value;
use std::io::{self, Read, Write};
use std::sync::Arc;

pub(crate) enum Phase {
    Handshake(Box<Handshake>),
    Up {
        remote: Arc<Remote>,
        out: Arc<Out>,
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
                    let mut g = out.inner.lock();
                    match self.tls.as_mut() {
                        None => {
                            std::mem::swap(&mut g.buf, &mut self.wbuf);
                            g.busy = !self.wbuf.is_empty();
                        }
                        Some(tls) => {
                            let plain = std::mem::take(&mut g.buf);
                            g.busy = !plain.is_empty();
                            drop(g);
                            if !plain.is_empty() {
                                tls.write(&plain).map_err(io::Error::other)?;
                                self.wbuf = tls.take_output();
                            }
                        }
                    }
                }
                if self.wbuf.is_empty() {
                    return Ok(());
                }
            }
            match self.sock.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
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

/// Appends the packet `[name, msg...]` in `framing` to `out`.
pub(crate) fn encode_packet(framing: Framing, name: &str, msg: &[Value], out: &mut Vec<u8>) {
    let before = out.len();
    let res = match framing {
        Framing::Json => (|| {
            out.push(b'[');
            serde_json::to_writer(&mut *out, name)?;
            for v in msg {
                out.push(b',');
                serde_json::to_writer(&mut *out, v)?;
            }
            out.push(b']');
            Ok::<_, serde_json::Error>(())
        })()
        .map_err(|e| e.to_string()),
        Framing::Cbor => (|| {
            cbor_head(out, 4, msg.len() as u64 + 1);
            cbor_head(out, 3, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
            for v in msg {
                ciborium::into_writer(v, &mut *out)?;
            }
            Ok::<_, ciborium::ser::Error<std::io::Error>>(())
        })()
        .map_err(|e| e.to_string()),
    };
    if let Err(e) = res {
        out.truncate(before);
        log::error!("cannot encode a packet for port {name:?}: {e}; dropped");
    }
}

/// A CBOR head: major type and argument.
fn cbor_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= u8::MAX as u64 {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= u16::MAX as u64 {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u32::MAX as u64 {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_codec() {
        let msg = vec![
            Value::from("tag"),
            Value::from(1),
            serde_json::json!({"a": [true]}),
        ];
        for framing in Framing::ALL {
            let mut ours = Vec::new();
            encode_packet(framing, "port1", &msg, &mut ours);
            let mut dec = Decoder::new(framing);
            dec.feed(&ours);
            let mut want = vec![Value::from("port1")];
            want.extend(msg.iter().cloned());
            assert_eq!(dec.next_packet().unwrap(), Some(want));
        }
    }
}
