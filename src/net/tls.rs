//! TLS (protocol notes §5) over in-memory pipes, so the reactor keeps owning
//! the socket: ciphertext read from the socket is fed in, plaintext comes
//! out, and plaintext written produces ciphertext to send.
//!
//! Both ends verify the peer's certificate against the configured PEM
//! (trust roots = the certificates in it), the server requires a client
//! certificate, host names are not checked. OpenSSL is used directly:
//! native-tls (which wraps it on Linux) cannot require or verify client
//! certificates.

use openssl::pkey::PKey;
use openssl::ssl::{
    HandshakeError, MidHandshakeSslStream, ShutdownState, SslAcceptor, SslConnector, SslMethod,
    SslStream, SslVerifyMode, SslVersion,
};
use openssl::x509::X509;
use std::io::{self, Read, Write};
use std::time::Duration;

/// The TLS contexts built from the configured PEM.
pub(crate) struct TlsConfig {
    connector: SslConnector,
    acceptor: SslAcceptor,
}

impl TlsConfig {
    /// Builds both contexts from PEM text holding a private key and a
    /// certificate (and optionally CA certificates).
    pub(crate) fn from_pem(pem: &str) -> Result<TlsConfig, String> {
        let key = PKey::private_key_from_pem(pem.as_bytes())
            .map_err(|e| format!("no usable private key in the PEM: {e}"))?;
        let certs = X509::stack_from_pem(pem.as_bytes())
            .map_err(|e| format!("bad certificate in the PEM: {e}"))?;
        let Some(own) = certs.first() else {
            return Err("no certificate in the PEM".into());
        };
        let err = |e: openssl::error::ErrorStack| e.to_string();
        let mut acc = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(err)?;
        let mut con = SslConnector::builder(SslMethod::tls()).map_err(err)?;
        for b in [&mut *acc, &mut *con] {
            b.set_private_key(&key).map_err(err)?;
            b.set_certificate(own).map_err(err)?;
            b.check_private_key()
                .map_err(|e| format!("the key does not match the certificate: {e}"))?;
            b.set_min_proto_version(Some(SslVersion::TLS1_2))
                .map_err(err)?;
            for c in &certs {
                b.cert_store_mut().add_cert(c.clone()).map_err(err)?;
            }
        }
        acc.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        // No session tickets (sessions are never resumed): a data
        // connection's blocking reader must not meet a record that is not
        // data after the handshake.
        acc.set_num_tickets(0).map_err(err)?;
        con.set_verify(SslVerifyMode::PEER);
        Ok(TlsConfig {
            connector: con.build(),
            acceptor: acc.build(),
        })
    }
}

/// Ciphertext in and out: in memory while the reactor owns the socket.
/// Once a data connection takes the session over (`attach`), input is
/// what is still buffered, then the (blocking) socket itself; output
/// stays in memory, for the data connection to write without holding
/// the session (see `dataconn/stream.rs`).
#[derive(Default)]
pub(crate) struct Pipe {
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
    sock: Option<std::net::TcpStream>,
}

impl Pipe {
    /// Whether ciphertext is buffered (read before the socket).
    pub(crate) fn has_input(&self) -> bool {
        self.pos < self.input.len()
    }

    /// Whether ciphertext waits to be sent.
    pub(crate) fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// The ciphertext to send.
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }
}

/// A taken-over session's close notification, sent once (a second
/// `SSL_shutdown` would wait for the peer's): the ciphertext to write.
pub(crate) fn close_notify(s: &mut SslStream<Pipe>) -> Vec<u8> {
    if !s.get_shutdown().contains(ShutdownState::SENT) {
        let _ = s.shutdown();
    }
    s.get_mut().take_output()
}

/// The last handle of a taken-over session is gone: the close
/// notification goes out on the socket, best effort (at most a second).
pub(crate) fn finish(s: &mut SslStream<Pipe>) {
    let out = close_notify(s);
    if let Some(sock) = &mut s.get_mut().sock {
        if !out.is_empty() && sock.set_write_timeout(Some(Duration::from_secs(1))).is_ok() {
            let _ = sock.write_all(&out);
        }
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
            if let Some(sock) = &mut self.sock {
                return sock.read(buf);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One connection's TLS session.
pub(crate) enum Tls {
    Handshaking(MidHandshakeSslStream<Pipe>),
    Ready(SslStream<Pipe>),
    Failed,
}

impl Tls {
    /// Starts TLS in the given role (the smaller nonce is the client).
    pub(crate) fn start(cfg: &TlsConfig, client: bool) -> Result<Tls, String> {
        let res = if client {
            let c = cfg
                .connector
                .configure()
                .map_err(|e| e.to_string())?
                .verify_hostname(false)
                .use_server_name_indication(false);
            c.connect("aemp", Pipe::default())
        } else {
            cfg.acceptor.accept(Pipe::default())
        };
        Tls::from_handshake(res)
    }

    fn from_handshake(res: Result<SslStream<Pipe>, HandshakeError<Pipe>>) -> Result<Tls, String> {
        match res {
            Ok(s) => Ok(Tls::Ready(s)),
            Err(HandshakeError::WouldBlock(mid)) => Ok(Tls::Handshaking(mid)),
            Err(HandshakeError::Failure(mid)) => {
                Err(format!("TLS handshake failed: {}", mid.error()))
            }
            Err(HandshakeError::SetupFailure(e)) => Err(format!("TLS setup failed: {e}")),
        }
    }

    fn pipe(&mut self) -> Option<&mut Pipe> {
        match self {
            Tls::Handshaking(m) => Some(m.get_mut()),
            Tls::Ready(s) => Some(s.get_mut()),
            Tls::Failed => None,
        }
    }

    pub(crate) fn is_ready(&self) -> bool {
        matches!(self, Tls::Ready(_))
    }

    /// Whether the peer sent its close notification.
    pub(crate) fn peer_closed(&mut self) -> bool {
        match self {
            Tls::Ready(s) => s.get_shutdown().contains(ShutdownState::RECEIVED),
            _ => false,
        }
    }

    /// Feeds ciphertext; appends the plaintext it yields to `plain`.
    /// Returns true when this completed the TLS handshake.
    pub(crate) fn feed(&mut self, data: &[u8], plain: &mut Vec<u8>) -> Result<bool, String> {
        let pipe = self.pipe().ok_or("TLS failed earlier")?;
        pipe.input.extend_from_slice(data);
        let mut became_ready = false;
        if let Tls::Handshaking(_) = self {
            let Tls::Handshaking(mid) = std::mem::replace(self, Tls::Failed) else {
                unreachable!("checked above")
            };
            *self = Tls::from_handshake(mid.handshake())?;
            became_ready = self.is_ready();
        }
        if let Tls::Ready(s) = self {
            let mut buf = [0u8; 16 << 10];
            loop {
                match s.read(&mut buf) {
                    // The peer's close notification: what came before
                    // is kept; the caller decides (`peer_closed`).
                    Ok(0) => break,
                    Ok(n) => plain.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("TLS error: {e}")),
                }
            }
        }
        Ok(became_ready)
    }

    /// Encrypts plaintext (only once ready).
    pub(crate) fn write(&mut self, plain: &[u8]) -> Result<(), String> {
        match self {
            Tls::Ready(s) => s.write_all(plain).map_err(|e| format!("TLS error: {e}")),
            _ => Err("TLS is not ready for data".into()),
        }
    }

    /// The ready session, taken over by a data connection: from now on it
    /// reads `sock` (blocking) directly, after the ciphertext still
    /// buffered; what it has to send is written first.
    pub(crate) fn attach(self, sock: std::net::TcpStream) -> Result<SslStream<Pipe>, String> {
        match self {
            Tls::Ready(mut s) => {
                let pipe = s.get_mut();
                let mut sock = sock;
                sock.write_all(&std::mem::take(&mut pipe.output))
                    .map_err(|e| format!("write error: {e}"))?;
                pipe.sock = Some(sock);
                Ok(s)
            }
            _ => Err("TLS is not ready for data".into()),
        }
    }

    /// The ciphertext to send.
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        self.pipe()
            .map(|p| std::mem::take(&mut p.output))
            .unwrap_or_default()
    }
}
