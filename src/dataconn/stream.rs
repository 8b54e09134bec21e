//! [`DataConn`]: a data connection as a blocking byte stream.

use crate::id::NodeId;
use crate::net::{Handed, TlsStream};
use parking_lot::Mutex;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

/// A data connection between two nodes: a blocking byte stream, used like
/// a [`TcpStream`] (TLS included when the nodes use it). Raw bytes only:
/// nothing else travels on it after the handshake.
///
/// [`try_clone`](DataConn::try_clone) gives a second handle on the same
/// connection, e.g. one for a reading thread and one for a writing one.
/// Dropping every handle closes the connection; the peer then reads the
/// end of the stream.
///
/// Made by [`Node::data_connect`](crate::Node::data_connect) and
/// [`Node::data_connect_cb`](crate::Node::data_connect_cb) on the calling
/// node, and handed to the function registered with
/// [`Node::register_dataconn`](crate::Node::register_dataconn) on the
/// other.
///
/// ```
/// use aemp::{Config, Node};
/// use std::io::{Read, Write};
/// let node = Node::with_config(Config::new("doc/dataconn/%u").bind("127.0.0.1:0").secret("s"))
///     .unwrap();
/// node.register_dataconn("doc::upper", |_args, mut conn| {
///     let mut line = String::new();
///     conn.read_to_string(&mut line).unwrap();
///     conn.write_all(line.to_uppercase().as_bytes()).unwrap();
/// })
/// .unwrap();
/// // To the own node: a socket pair.
/// let mut conn = node
///     .data_connect(node.id(), std::time::Duration::from_secs(5), "doc::upper", aemp::msg![])
///     .unwrap();
/// conn.write_all(b"hello").unwrap();
/// conn.shutdown(std::net::Shutdown::Write).unwrap();
/// let mut answer = String::new();
/// conn.read_to_string(&mut answer).unwrap();
/// assert_eq!(answer, "HELLO");
/// ```
pub struct DataConn {
    peer: NodeId,
    inner: Inner,
}

enum Inner {
    Tcp {
        sock: TcpStream,
        leftover: Arc<Mutex<Leftover>>,
    },
    Tls {
        sock: TcpStream,
        session: Arc<Mutex<Session>>,
        /// Held while ciphertext is taken from the session and written,
        /// so that records leave in order; never with a blocking read.
        wlock: Arc<Mutex<()>>,
    },
    Local(UnixStream),
}

/// Bytes that arrived with the handshake's end, read first.
#[derive(Default)]
struct Leftover {
    bytes: Vec<u8>,
    pos: usize,
}

impl Leftover {
    /// Copies buffered bytes into `buf`; `None` when there are none.
    fn take(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.pos >= self.bytes.len() {
            if !self.bytes.is_empty() {
                self.bytes = Vec::new();
                self.pos = 0;
            }
            return None;
        }
        let n = buf.len().min(self.bytes.len() - self.pos);
        buf[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
        Some(n)
    }
}

/// The TLS session shared by a connection's handles.
struct Session {
    tls: TlsStream,
    leftover: Leftover,
}

impl Drop for Session {
    fn drop(&mut self) {
        Handed::finish_tls(&mut self.tls);
    }
}

impl Session {
    /// Whether a read can proceed without waiting for the socket.
    fn has_buffered(&self) -> bool {
        self.leftover.pos < self.leftover.bytes.len()
            || self.tls.ssl().pending() > 0
            || Handed::tls_buffered(&self.tls)
    }
}

impl std::fmt::Debug for DataConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataConn")
            .field("peer", &self.peer)
            .field("tls", &self.is_tls())
            .finish()
    }
}

impl DataConn {
    /// A connection the network handed over.
    pub(crate) fn from_handed(peer: NodeId, h: Handed) -> DataConn {
        let leftover = Leftover {
            bytes: h.leftover,
            pos: 0,
        };
        let inner = match h.tls {
            Some(tls) => Inner::Tls {
                sock: h.sock,
                session: Arc::new(Mutex::new(Session { tls, leftover })),
                wlock: Arc::new(Mutex::new(())),
            },
            None => Inner::Tcp {
                sock: h.sock,
                leftover: Arc::new(Mutex::new(leftover)),
            },
        };
        DataConn { peer, inner }
    }

    /// One end of a connection to the own node (a socket pair).
    pub(crate) fn local(peer: NodeId, sock: UnixStream) -> DataConn {
        DataConn {
            peer,
            inner: Inner::Local(sock),
        }
    }

    /// The node at the other end.
    ///
    /// ```
    /// use aemp::{msg, Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-peer-node/").secret("s")).unwrap();
    /// node.register_dataconn("doc::sink", |_, _| {}).unwrap();
    /// let conn = node.data_connect(node.id(), Duration::from_secs(5), "doc::sink", msg![]).unwrap();
    /// assert_eq!(conn.peer_node(), node.id());
    /// assert!(!conn.is_tls()); // a secret, no certificate: plain TCP (here a socket pair)
    /// ```
    pub fn peer_node(&self) -> &NodeId {
        &self.peer
    }

    /// Whether the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls { .. })
    }

    /// Another handle on the same connection (for another thread). Under
    /// TLS the handles share one session: a read waits for data without
    /// holding it, so one thread can write while another waits to read.
    ///
    /// ```
    /// use aemp::{msg, Config, Node};
    /// use std::io::{Read, Write};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-try-clone/").secret("s")).unwrap();
    /// node.register_dataconn("doc::upper", |_, conn| {
    ///     let mut out = conn.try_clone().unwrap();
    ///     for b in conn.bytes() {
    ///         out.write_all(&[b.unwrap().to_ascii_uppercase()]).unwrap();
    ///     }
    /// }).unwrap();
    /// let mut conn = node.data_connect(node.id(), Duration::from_secs(5), "doc::upper", msg![]).unwrap();
    /// let mut reader = conn.try_clone().unwrap();
    /// let t = std::thread::spawn(move || {
    ///     let mut s = String::new();
    ///     reader.read_to_string(&mut s).unwrap(); // until the other end closes
    ///     s
    /// });
    /// conn.write_all(b"shout").unwrap();
    /// conn.shutdown(std::net::Shutdown::Write).unwrap(); // ends the other side's loop
    /// assert_eq!(t.join().unwrap(), "SHOUT");
    /// ```
    pub fn try_clone(&self) -> io::Result<DataConn> {
        let inner = match &self.inner {
            Inner::Tcp { sock, leftover } => Inner::Tcp {
                sock: sock.try_clone()?,
                leftover: leftover.clone(),
            },
            Inner::Tls {
                sock,
                session,
                wlock,
            } => Inner::Tls {
                sock: sock.try_clone()?,
                session: session.clone(),
                wlock: wlock.clone(),
            },
            Inner::Local(s) => Inner::Local(s.try_clone()?),
        };
        Ok(DataConn {
            peer: self.peer.clone(),
            inner,
        })
    }

    /// Shuts down reading, writing or both, like
    /// [`TcpStream::shutdown`]. Under TLS, shutting down writing first
    /// sends the TLS close notification.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match &self.inner {
            Inner::Tcp { sock, .. } => sock.shutdown(how),
            Inner::Tls {
                sock,
                session,
                wlock,
            } => {
                if how != Shutdown::Read {
                    // Best effort: the peer may be gone already.
                    let _w = wlock.lock();
                    let notify = Handed::close_notify(&mut session.lock().tls);
                    let _ = (&*sock).write_all(&notify);
                }
                sock.shutdown(how)
            }
            Inner::Local(s) => s.shutdown(how),
        }
    }

    /// Sets how long a read may wait (`None`: forever); a read that waited
    /// that long fails with `WouldBlock` or `TimedOut`.
    ///
    /// ```
    /// use aemp::{msg, Config, Node};
    /// use std::io::Read;
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-read-timeout/").secret("s")).unwrap();
    /// node.register_dataconn("doc::silent", |_, conn| {
    ///     std::thread::sleep(Duration::from_millis(200)); // says nothing for a while
    ///     drop(conn);
    /// }).unwrap();
    /// let mut conn = node.data_connect(node.id(), Duration::from_secs(5), "doc::silent", msg![]).unwrap();
    /// conn.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    /// let err = conn.read(&mut [0; 16]).unwrap_err();
    /// assert!(matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.inner {
            Inner::Tcp { sock, .. } | Inner::Tls { sock, .. } => sock.set_read_timeout(timeout),
            Inner::Local(s) => s.set_read_timeout(timeout),
        }
    }

    /// Sets how long a write may wait (`None`: forever).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.inner {
            Inner::Tcp { sock, .. } | Inner::Tls { sock, .. } => sock.set_write_timeout(timeout),
            Inner::Local(s) => s.set_write_timeout(timeout),
        }
    }
}

/// Reads through the TLS session: waits for ciphertext without holding
/// it, so that writers on other handles go on meanwhile.
fn tls_read(sock: &TcpStream, session: &Mutex<Session>, buf: &mut [u8]) -> io::Result<usize> {
    {
        let mut s = session.lock();
        if let Some(n) = s.leftover.take(buf) {
            return Ok(n);
        }
        if s.has_buffered() {
            return s.tls.ssl_read(buf).or_else(eof_as_zero);
        }
    }
    let mut probe = [0u8; 1];
    sock.peek(&mut probe)?;
    let mut s = session.lock();
    if let Some(n) = s.leftover.take(buf) {
        return Ok(n);
    }
    s.tls.ssl_read(buf).or_else(eof_as_zero)
}

/// A TLS error as an I/O error.
fn tls_err(e: openssl::ssl::Error) -> io::Error {
    match e.into_io_error() {
        Ok(e) => e,
        Err(e) => io::Error::other(format!("TLS error: {e}")),
    }
}

impl Read for DataConn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match &mut self.inner {
            Inner::Tcp { sock, leftover } => match leftover.lock().take(buf) {
                Some(n) => Ok(n),
                None => sock.read(buf),
            },
            Inner::Tls {
                sock,
                session,
                wlock,
            } => {
                let n = tls_read(sock, session, buf)?;
                // Reading may have made the session answer (an alert, a
                // key update): send it unless a writer is at it.
                if session.lock().tls.get_ref().has_output() {
                    if let Some(_w) = wlock.try_lock() {
                        let out = session.lock().tls.get_mut().take_output();
                        (&*sock).write_all(&out)?;
                    }
                }
                Ok(n)
            }
            Inner::Local(s) => s.read(buf),
        }
    }
}

/// The peer closed (cleanly, or without a TLS close notification): the
/// end of the stream.
fn eof_as_zero(e: openssl::ssl::Error) -> io::Result<usize> {
    use openssl::ssl::ErrorCode;
    if e.code() == ErrorCode::ZERO_RETURN
        || (e.code() == ErrorCode::SYSCALL && e.io_error().is_none())
    {
        return Ok(0);
    }
    Err(tls_err(e))
}

impl Write for DataConn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match &mut self.inner {
            Inner::Tcp { sock, .. } => sock.write(buf),
            Inner::Tls {
                sock,
                session,
                wlock,
            } => {
                // Encrypt under the session, write without it.
                let _w = wlock.lock();
                let (n, out) = {
                    let mut s = session.lock();
                    let n = s.tls.ssl_write(buf).map_err(tls_err)?;
                    (n, s.tls.get_mut().take_output())
                };
                (&*sock).write_all(&out)?;
                Ok(n)
            }
            Inner::Local(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Tcp { sock, .. } => sock.flush(),
            // Every write leaves at once.
            Inner::Tls { .. } => Ok(()),
            Inner::Local(s) => s.flush(),
        }
    }
}
