//! The network's seam for data connections (`crate::dataconn`): opening
//! one (a TCP connection with the `aemp-dataconn` handshake, attempts two
//! seconds apart through the addresses, as the original), and handing an
//! authenticated one out of the reactor, deregistered and blocking, with
//! its TLS session and the bytes that arrived with the handshake's end.
//! A data connection never enters the message protocol, the duplicate
//! rule or node up/down events. The network calls the data-connection
//! room only through [`DataConnSink`].

use super::conn::{Conn, Phase};
use super::reactor::Reactor;
use super::tls::Pipe;
use super::Net;
use mio::Token;
use openssl::ssl::SslStream;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The handshake's protocol name for data connections.
pub(crate) const PROTOCOL: &str = "aemp-dataconn";

/// The original's hard-coded gap between attempts.
const ATTEMPT_GAP: Duration = Duration::from_secs(2);

/// How long handing off may block writing the handshake's last bytes.
const HANDOFF_WRITE: Duration = Duration::from_secs(5);

/// A TLS session over a blocking socket, taken over from the reactor.
pub(crate) type TlsStream = SslStream<Pipe>;

/// An authenticated data connection, out of the reactor.
pub(crate) struct Handed {
    /// The peer's node ID (as its greeting said, authenticated).
    pub(crate) peer: String,
    /// The socket, blocking.
    pub(crate) sock: TcpStream,
    /// The TLS session, if the handshake switched to TLS.
    pub(crate) tls: Option<TlsStream>,
    /// Plaintext that arrived after the handshake, before the handoff.
    pub(crate) leftover: Vec<u8>,
}

impl Handed {
    /// Whether TLS ciphertext is buffered in the session's input.
    pub(crate) fn tls_buffered(tls: &TlsStream) -> bool {
        tls.get_ref().has_input()
    }

    /// The TLS close notification (once): the ciphertext to write.
    pub(crate) fn close_notify(tls: &mut TlsStream) -> Vec<u8> {
        super::tls::close_notify(tls)
    }

    /// The session's last handle is gone: its close notification goes
    /// out, best effort.
    pub(crate) fn finish_tls(tls: &mut TlsStream) {
        super::tls::finish(tls)
    }
}

/// Where data connections go (the data-connection room): `id`'s
/// connection came up, or failed. Called on the reactor thread: must be
/// short and never run user code.
pub(crate) trait DataConnSink: Send + Sync {
    fn handoff(&self, id: &str, result: Result<Handed, String>);
    /// The sink itself, for its owner to find it again.
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
}

/// Attempts to open one data connection.
pub(super) struct DataDial {
    id: String,
    addrs: Vec<(String, SocketAddr)>,
    next: usize,
    pub(super) next_at: Instant,
    attempts: Vec<Token>,
}

impl Net {
    /// Sets where data connections go (once; later calls are ignored).
    pub(crate) fn set_dataconn_sink(&self, sink: Arc<dyn DataConnSink>) {
        let _ = self.dataconn.set(sink);
    }

    /// Where data connections go, once set.
    pub(crate) fn dataconn_sink(&self) -> Option<Arc<dyn DataConnSink>> {
        self.dataconn.get().cloned()
    }

    /// Opens data connection `id` to one of `addrs`; the outcome goes to
    /// the sink.
    pub(crate) fn data_dial(&self, id: String, addrs: Vec<(String, SocketAddr)>) {
        self.reactor.data_dial(id, addrs);
    }

    /// The known addresses of `node`, in trial order.
    pub(crate) fn known_addresses(&self, node: &str) -> Vec<(String, SocketAddr)> {
        self.addresses.lock().get(node).cloned().unwrap_or_default()
    }

    pub(super) fn data_handoff(&self, id: &str, result: Result<Handed, String>) {
        match self.dataconn.get() {
            Some(sink) => sink.handoff(id, result),
            None => log::debug!("{}: data connection {id} with nobody to take it", self.id),
        }
    }
}

impl Reactor {
    /// Starts opening data connection `id` (`Cmd::DataDial`).
    pub(super) fn data_dial(&mut self, id: String, addrs: Vec<(String, SocketAddr)>) {
        if addrs.is_empty() {
            self.net
                .data_handoff(&id, Err("no addresses to connect to".into()));
            return;
        }
        let now = Instant::now();
        self.data_dials.push(DataDial {
            id,
            addrs,
            next: 0,
            next_at: now,
            attempts: Vec::new(),
        });
        self.data_dial_timers(now);
    }

    /// Starts the attempts whose turn came; a dial with every address
    /// tried is left to its attempts.
    pub(super) fn data_dial_timers(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.data_dials.len() {
            let d = &mut self.data_dials[i];
            if d.next_at > now {
                i += 1;
                continue;
            }
            let Some((text, addr)) = d.addrs.get(d.next).cloned() else {
                self.data_dials.swap_remove(i);
                continue;
            };
            d.next += 1;
            d.next_at = now + ATTEMPT_GAP;
            let id = d.id.clone();
            let started = match mio::net::TcpStream::connect(addr) {
                Ok(sock) => self
                    .add_conn(sock, text.clone(), None, Some(id.clone()))
                    .ok_or_else(|| format!("cannot connect to {text}: too many connections")),
                Err(e) => Err(format!("cannot connect to {text}: {e}")),
            };
            match started {
                Ok(t) => {
                    if let Some(d) = self.data_dials.get_mut(i) {
                        d.attempts.push(t);
                    }
                    i += 1;
                }
                Err(why) => {
                    // As the original: an attempt's error ends it all.
                    self.data_outcome(&id, Token(usize::MAX));
                    self.net.data_handoff(&id, Err(why));
                }
            }
        }
    }

    /// Data connection `id` came up or failed over connection `token`:
    /// no further attempts, and the other attempts close unreported.
    pub(super) fn data_outcome(&mut self, id: &str, token: Token) {
        let Some(i) = self.data_dials.iter().position(|d| d.id == id) else {
            return;
        };
        let d = self.data_dials.swap_remove(i);
        for t in d.attempts.into_iter().filter(|&t| t != token) {
            if let Some(mut c) = self.conns.remove(t) {
                c.dataconn = None;
                let _ = self.poll.registry().deregister(&mut c.sock);
                let _ = c.sock.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Hands an authenticated data connection (lent out of its freed slot)
    /// out of the reactor.
    pub(super) fn hand_off(&mut self, mut conn: Conn) {
        let _ = self.poll.registry().deregister(&mut conn.sock);
        let id = conn.dataconn.take().unwrap_or_default();
        self.data_outcome(&id, conn.token);
        let Conn {
            sock,
            phase,
            tls,
            wbuf,
            wpos,
            ..
        } = conn;
        let Phase::Data { peer, leftover } = phase else {
            return;
        };
        let result = (|| {
            let err = |e: std::io::Error| format!("handing the connection over: {e}");
            let std = sock
                .as_fd()
                .try_clone_to_owned()
                .map(TcpStream::from)
                .map_err(err)?;
            drop(sock);
            std.set_nonblocking(false).map_err(err)?;
            // The handshake's last bytes (our auth line) may be unwritten.
            std.set_write_timeout(Some(HANDOFF_WRITE)).map_err(err)?;
            (&std)
                .write_all(&wbuf[wpos.min(wbuf.len())..])
                .map_err(err)?;
            std.set_write_timeout(None).map_err(err)?;
            let tls = match tls {
                Some(t) => Some(t.attach(std.try_clone().map_err(err)?)?),
                None => None,
            };
            Ok(Handed {
                peer,
                sock: std,
                tls,
                leftover,
            })
        })();
        self.net.data_handoff(&id, result);
    }
}
