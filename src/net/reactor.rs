//! The reactor: one mio thread per networked node owning its listeners
//! and connections. This file holds its poll loop (socket events, the
//! commands other threads send through [`Handle`], the deadlines and
//! timers: handshake time-outs, heartbeats, the seeds' rounds of
//! `seeds.rs`), accepting, reading and writing sockets, and opening and
//! closing connections (kept in `conn.rs`'s [`Conns`]: an event of a
//! connection in its data phase is handled with the connection in place;
//! one in its handshake, which may weigh and close other connections, has
//! it lent out of its slot). The rest of the reactor lives beside it, in
//! `impl Reactor` blocks on the same thread:
//! - `dial.rs`: dialing, connection attempts to a node (addresses in turn,
//!   `connect_interval` apart, until `monitor_timeout`; the node's
//!   monitors fire after `connect_interval` without a connection);
//! - `inbound.rs`: what arrives on a connection: the handshake, the
//!   greeting (the duplicate-connection rule of `duplicate.rs`), the data
//!   phase's packets routed into port inboxes;
//! - `closing.rs`: closing one connection, and the reactor's two ends
//!   (at once, or cleanly when the node shuts down).
//!
//! It never runs user code and never blocks except in `poll`.

use super::conn::{Conn, Conns, Phase, ReadState, FIRST_CONN};
use super::dial::Dial;
use super::outbox::Pushed;
use super::remote::Remote;
use super::{inbound, Net};
use crate::busy::{BusyWait, Sends};
use crate::error::{Error, Result};
use crate::transport::Handshake;
use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAKER: Token = Token(0);

enum Cmd {
    Flush(Token),
    /// Read the connection (a thread that followed it left packets).
    Read(Token),
    Dial(Arc<Remote>),
    Connect(String, Vec<SocketAddr>),
    Cut(String),
    /// New addresses for a node: try them now.
    Poke(String),
    /// Run the seeds' round now (`seeds.rs`).
    Seeds,
    /// Open a data connection (`handoff.rs`): its ID, the addresses.
    DataDial(String, Vec<(String, SocketAddr)>),
    /// The connection's unsent bytes passed the limit.
    OverLimit(Token, usize),
    /// Stop at once, as if the process died (the node is dropped, or the
    /// `net_shutdown` test hook).
    Shutdown,
    /// Stop cleanly (the node shuts down): flush and close every
    /// connection (see [`Reactor::close`]).
    Close,
}

/// How the rest of the node talks to the reactor.
pub(crate) struct Handle {
    cmds: Sender<Cmd>,
    waker: Arc<Waker>,
}

impl Handle {
    fn send(&self, cmd: Cmd) {
        if self.cmds.send(cmd).is_ok() {
            if let Err(e) = self.waker.wake() {
                log::error!("cannot wake the reactor: {e}");
            }
        }
    }

    /// The connection's outgoing buffer went from empty to non-empty.
    pub(crate) fn flush(&self, token: Token) {
        self.send(Cmd::Flush(token));
    }

    /// A thread that followed the connection left packets to route, or a
    /// failure to see: read it.
    pub(crate) fn read(&self, token: Token) {
        self.send(Cmd::Read(token));
    }

    /// The connection's outgoing buffer passed its limit: fail it.
    pub(crate) fn over_limit(&self, token: Token, unsent: usize) {
        self.send(Cmd::OverLimit(token, unsent));
    }

    /// Start connecting to `remote` (it is in `Connecting` state).
    pub(crate) fn dial(&self, remote: Arc<Remote>) {
        self.send(Cmd::Dial(remote));
    }

    pub(crate) fn connect(&self, text: String, addrs: Vec<SocketAddr>) {
        self.send(Cmd::Connect(text, addrs));
    }

    pub(crate) fn poke(&self, node: String) {
        self.send(Cmd::Poke(node));
    }

    /// Run the seeds' round (`seeds.rs`) now.
    pub(crate) fn seeds_due(&self) {
        self.send(Cmd::Seeds);
    }

    /// Opens data connection `id` to one of `addrs` (`handoff.rs`).
    pub(crate) fn data_dial(&self, id: String, addrs: Vec<(String, SocketAddr)>) {
        self.send(Cmd::DataDial(id, addrs));
    }

    pub(crate) fn cut(&self, node: String) {
        self.send(Cmd::Cut(node));
    }

    pub(crate) fn shutdown(&self) {
        self.send(Cmd::Shutdown);
    }

    /// Stop cleanly: flush and close every connection, then end.
    pub(crate) fn close(&self) {
        self.send(Cmd::Close);
    }
}

type Starter = Box<dyn FnOnce(Arc<Net>) -> Result<std::thread::JoinHandle<()>>>;

/// Binds the listeners; returns the handle, the bound addresses and a
/// function that starts the reactor thread once the `Net` exists.
pub(crate) fn prepare(
    binds: &[(String, SocketAddr)],
) -> Result<(Handle, Vec<SocketAddr>, Starter)> {
    let start_err = |e: std::io::Error| Error::NetworkStart {
        problem: e.to_string(),
    };
    let poll = Poll::new().map_err(start_err)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(start_err)?);
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for (i, (text, addr)) in binds.iter().enumerate() {
        let bad = |e: std::io::Error| Error::BadBind {
            bind: text.clone(),
            problem: e.to_string(),
        };
        let mut l = TcpListener::bind(*addr).map_err(bad)?;
        poll.registry()
            .register(&mut l, Token(1 + i), Interest::READABLE)
            .map_err(bad)?;
        addrs.push(l.local_addr().map_err(bad)?);
        listeners.push(l);
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = Handle { cmds: tx, waker };
    let start: Starter = Box::new(move |net: Arc<Net>| {
        let name = format!("aemp-net {}", net.id);
        let heartbeat_next = (!net.tick.is_zero()).then(|| Instant::now() + net.tick / 4);
        let registry = match poll.registry().try_clone() {
            Ok(r) => Arc::new(r),
            Err(e) => return Err(start_err(e)),
        };
        let reactor = Reactor {
            net,
            poll,
            registry,
            cmds: rx,
            listeners,
            conns: Conns::new(),
            dials: HashMap::new(),
            data_dials: Vec::new(),
            greeted: HashMap::new(),
            again: Vec::new(),
            rbuf: vec![0; READ_BUF],
            accept_retry: None,
            heartbeat_next,
            seeds_next: Instant::now(),
        };
        std::thread::Builder::new()
            .name(name)
            .spawn(move || reactor.run())
            .map_err(start_err)
    });
    Ok((handle, addrs, start))
}

/// The reason a connection fails when its outgoing buffer is full.
pub(super) fn over_limit(unsent: usize, limit: usize) -> String {
    format!(
        "outgoing buffer over its limit ({unsent} bytes unsent, unsent_limit {limit}): the peer does not read"
    )
}

pub(super) struct Reactor {
    pub(super) net: Arc<Net>,
    pub(super) poll: Poll,
    /// The poll's registry, shared with the connections' reading sides
    /// (`follow.rs`).
    pub(super) registry: Arc<mio::Registry>,
    cmds: Receiver<Cmd>,
    listeners: Vec<TcpListener>,
    pub(super) conns: Conns,
    pub(super) dials: HashMap<String, Dial>,
    /// Data connections being opened (`handoff.rs`).
    pub(super) data_dials: Vec<super::handoff::DataDial>,
    /// Node ID → the connection that passed its greeting (handshaking or up).
    pub(super) greeted: HashMap<String, Token>,
    /// Connections whose read or write budget ran out: read and written
    /// again next turn (no event would come for what is left).
    again: Vec<Token>,
    /// Read buffer ([`READ_BUF`]), shared by all connections.
    rbuf: Vec<u8>,
    /// After an accept error (out of file descriptors): when to try the
    /// listeners again. They are edge-triggered, so a client already
    /// waiting in the kernel's queue would otherwise wait for the next one.
    accept_retry: Option<Instant>,
    /// When the connections' heartbeats are looked at next (every quarter
    /// tick; `None` without a tick).
    heartbeat_next: Option<Instant>,
    /// When the seeds' round runs next.
    seeds_next: Instant,
}

/// At most this many bytes wait unsent in the kernel's buffer of a
/// connection (`TCP_NOTSENT_LOWAT`; the socket reports writable below
/// half of it). Without a bound the kernel takes up to its whole send
/// buffer (4 MiB here) from a stream of large packets, and a small packet
/// to another port waits behind all of it (milliseconds); bounded, the
/// backlog waits in the outbox, where small packets overtake large ones
/// (`lanes.rs`). It bounds only what is not sent yet, never what is in
/// flight, so long links keep their throughput.
#[cfg(any(target_os = "linux", target_os = "android"))]
const UNSENT_IN_KERNEL: u32 = 64 << 10;

/// At most about this many bytes are written to one connection per turn
/// of the reactor; then it looks at its other events (and comes back).
/// Without a bound, a stream of large packets whose sender keeps the
/// outbox full holds the reactor in one connection's write loop for as
/// long as the peer's receive window takes bytes (milliseconds on
/// loopback, whose window grows to many megabytes), and an answer that
/// arrived meanwhile on any connection waits unread. 256 KiB is four
/// 64 KiB packets, about 100 µs of loopback writes.
const WRITE_BUDGET: usize = 256 << 10;

/// The reactor's read buffer. A packet that lies whole in one read is
/// decoded where it is; one that continues beyond it is copied into its
/// connection's decoder first. 256 KiB holds several 64 KiB packets, so
/// large messages mostly skip that copy.
const READ_BUF: usize = 256 << 10;

/// How long after a failed accept the listeners are tried again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

impl Reactor {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut busy =
            BusyWait::conversing(self.net.busy_wait, Sends::Counted(self.net.sends.clone()));
        loop {
            let deadline = self.next_deadline();
            let start = Instant::now();
            let timeout = if self.again.is_empty() {
                deadline.map(|d| d.saturating_duration_since(start))
            } else {
                Some(Duration::ZERO)
            };
            // Poll without sleeping for a while first (see `crate::busy`); an
            // error is left to the sleeping poll below.
            let polled = timeout != Some(Duration::ZERO)
                && busy.spin(start, deadline, || {
                    self.poll.poll(&mut events, Some(Duration::ZERO)).is_ok() && !events.is_empty()
                });
            if !polled {
                if let Err(e) = self.poll.poll(&mut events, timeout) {
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        log::error!("{}: reactor poll failed: {e}; network stopped", self.net.id);
                        return self.shutdown();
                    }
                }
                if !events.is_empty() {
                    busy.slept(start);
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    Token(t) if t < FIRST_CONN => self.accept(t - 1),
                    token => {
                        let closed = ev.is_read_closed() || ev.is_error();
                        let readable = ev.is_readable() || closed;
                        self.conn_event(token, readable.then_some(closed), ev.is_writable())
                    }
                }
            }
            while let Ok(cmd) = self.cmds.try_recv() {
                match cmd {
                    Cmd::Shutdown => return self.shutdown(),
                    Cmd::Close => return self.close(),
                    cmd => self.command(cmd),
                }
            }
            for token in std::mem::take(&mut self.again) {
                self.conn_event(token, Some(true), false);
            }
            self.timers();
        }
    }

    /// Handles a command (but those that stop the reactor).
    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Flush(token) => {
                log::trace!("{}: flush {token:?}", self.net.id);
                self.conn_event(token, None, true)
            }
            Cmd::Read(token) => self.conn_event(token, Some(true), false),
            Cmd::Dial(remote) => {
                let now = Instant::now();
                let (mt, ci) = (self.net.monitor_timeout, self.net.connect_interval);
                self.dials
                    .entry(remote.id.to_string())
                    .or_insert_with(|| Dial::new(remote, now, mt))
                    .wish(now, ci, mt);
            }
            Cmd::Connect(text, addrs) => {
                if let Some(addr) = addrs.first() {
                    let _ = self.start_connect(*addr, text, None);
                }
            }
            Cmd::Cut(node) => {
                if let Some(token) = self.greeted.get(&node).copied() {
                    if let Some(conn) = self.conns.remove(token) {
                        self.finish(token, conn, "connection cut (test hook)");
                    }
                }
            }
            Cmd::OverLimit(token, unsent) => {
                if let Some(conn) = self.conns.remove(token) {
                    let why = over_limit(unsent, self.net.unsent_limit);
                    self.finish(token, conn, &why);
                }
            }
            Cmd::Poke(node) => {
                if let Some(d) = self.dials.get_mut(&node) {
                    d.next_at = Instant::now();
                }
            }
            Cmd::Seeds => self.seeds_next = Instant::now(),
            Cmd::DataDial(id, addrs) => self.data_dial(id, addrs),
            Cmd::Shutdown | Cmd::Close => {}
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let hs = self.conns.iter().filter_map(|c| match &c.phase {
            Phase::Handshake(h) => Some(h.deadline()),
            Phase::Up { .. } | Phase::Data { .. } => None,
        });
        hs.chain(self.dial_deadline())
            .chain(self.data_dials.iter().map(|d| d.next_at))
            .chain(self.accept_retry)
            .chain(self.heartbeat_next)
            .chain(Some(self.seeds_next))
            .min()
    }

    /// The node-wide timers: the seeds' round, heartbeats, listeners to
    /// try again.
    fn node_timers(&mut self, now: Instant) {
        if self.seeds_next <= now {
            self.seeds_next = self.net.seeds_round();
        }
        if self.heartbeat_next.is_some_and(|t| t <= now) {
            self.heartbeat_next = Some(now + self.net.tick / 4);
            self.heartbeats(now);
        }
        if self.accept_retry.is_some_and(|t| t <= now) {
            self.accept_retry = None;
            for i in 0..self.listeners.len() {
                self.accept(i);
            }
        }
    }

    fn timers(&mut self) {
        let now = Instant::now();
        self.node_timers(now);
        let expired: Vec<Token> = self
            .conns
            .iter()
            .filter(|c| matches!(&c.phase, Phase::Handshake(h) if h.deadline() <= now))
            .map(|c| c.token)
            .collect();
        for token in expired {
            if let Some(conn) = self.conns.remove(token) {
                self.finish(token, conn, "handshake timed out");
            }
        }
        self.dial_timers(now);
        self.data_dial_timers(now);
    }

    /// The heartbeat (see [`Config::tick`](crate::Config::tick)): a
    /// connection silent for a tick is probed; one whose probe has gone
    /// unanswered for two more ticks is dead. Silence alone never kills:
    /// after this node itself was stopped, its peers get a fresh probe.
    fn heartbeats(&mut self, now: Instant) {
        let tick = self.net.tick;
        let mut dead = Vec::new();
        let mut probe = Vec::new();
        for c in self.conns.iter() {
            let heard = c.last_heard();
            if !matches!(c.phase, Phase::Up { .. }) || now.duration_since(heard) < tick {
                continue;
            }
            match c.heartbeat_at {
                Some(t) if t > heard && now.duration_since(t) >= 2 * tick => {
                    dead.push((c.token, now.duration_since(heard)))
                }
                Some(t) if t > heard => {}
                _ => probe.push(c.token),
            }
        }
        for (token, silent) in dead {
            if let Some(conn) = self.conns.remove(token) {
                let why = format!(
                    "no answer for {:.1} s (heartbeat, tick {:.1} s)",
                    silent.as_secs_f64(),
                    tick.as_secs_f64()
                );
                self.finish(token, conn, &why);
            }
        }
        for token in probe {
            let Some(c) = self.conns.get_mut(token) else {
                continue;
            };
            c.heartbeat_at = Some(now);
            if let Phase::Up { out, .. } = &c.phase {
                let pushed = out.heartbeat(self.net.id.as_str());
                self.pushed(token, pushed);
            }
        }
    }

    fn handshake(&self, addr: &str, dataconn: Option<&str>) -> Box<Handshake> {
        let mut cfg = self.net.hs.clone();
        if let Some(id) = dataconn {
            cfg.protocol = super::handoff::PROTOCOL.into();
            cfg.extra = vec![("dataconn_id".into(), id.to_string())];
        }
        cfg.extra.push(("peeraddr".into(), addr.to_string()));
        Box::new(Handshake::new(cfg, Instant::now()))
    }

    pub(super) fn add_conn(
        &mut self,
        mut sock: TcpStream,
        addr: String,
        dialed: Option<Option<Arc<Remote>>>,
        dataconn: Option<String>,
    ) -> Option<Token> {
        if let Err(e) = sock.set_nodelay(self.net.nodelay) {
            log::debug!("set_nodelay on {addr}: {e}");
        }
        if let Err(e) = socket2::SockRef::from(&sock).set_keepalive(true) {
            log::debug!("keepalive on {addr}: {e}");
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(e) = socket2::SockRef::from(&sock).set_tcp_notsent_lowat(UNSENT_IN_KERNEL) {
            log::debug!("TCP_NOTSENT_LOWAT on {addr}: {e}");
        }
        let Some(token) = self.conns.next_token() else {
            log::warn!("{}: too many connections; closing {addr}", self.net.id);
            return None;
        };
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
        {
            log::warn!(
                "{}: cannot register connection with {addr}: {e}",
                self.net.id
            );
            return None;
        }
        let mut hs = self.handshake(&addr, dataconn.as_deref());
        let wbuf = hs.take_output();
        let tcp_connecting = dialed.is_some() || dataconn.is_some();
        self.conns.insert(Conn {
            token,
            sock,
            addr,
            dialed,
            tcp_connecting,
            phase: Phase::Handshake(hs),
            tls: None,
            peer: None,
            dataconn,
            wbuf,
            wpos: 0,
            last_rx: Instant::now(),
            heartbeat_at: None,
            probed: None,
        });
        if !tcp_connecting {
            self.conn_event(token, Some(true), true);
        }
        Some(token)
    }

    fn accept(&mut self, i: usize) {
        loop {
            let Some(l) = self.listeners.get(i) else {
                return;
            };
            match l.accept() {
                Ok((sock, addr)) => {
                    self.add_conn(sock, addr.to_string(), None, None);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // E.g. out of file descriptors: the listener stays,
                    // and is tried again soon (see `accept_retry`).
                    if self.accept_retry.is_none() {
                        log::warn!(
                            "{}: accept failed: {e}; trying again every {ACCEPT_RETRY:?}",
                            self.net.id
                        );
                    }
                    self.accept_retry = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    /// `readable`: `Some(drain)` to read (draining the socket if the
    /// peer may have closed).
    fn conn_event(&mut self, token: Token, readable: Option<bool>, writable: bool) {
        let more = match self.conns.get_mut(token) {
            None => return,
            // The data phase needs only the net: the connection stays in
            // its slot.
            Some(conn) if matches!(conn.phase, Phase::Up { .. }) => {
                let net = &self.net;
                let rbuf = &mut self.rbuf;
                let Phase::Up { reader, .. } = &conn.phase else {
                    return;
                };
                // Reading and routing under the reading side's lock: a
                // thread following the connection waits (`follow.rs`).
                let reader = reader.clone();
                let read = {
                    let mut st = reader.lock();
                    // What a follower left first (see `follow::State`).
                    let handed_back = if std::mem::take(&mut st.left) {
                        inbound::packets(net, conn, &mut st, &[])
                    } else {
                        Ok(())
                    };
                    handed_back.and_then(|()| {
                        drive_read(conn, rbuf, readable, |c, data| {
                            inbound::received_up(net, c, &mut st, data)
                        })
                    })
                };
                match read.and_then(|more| {
                    let wmore = conn
                        .flush_some(WRITE_BUDGET)
                        .map_err(|e| format!("write error: {e}"))?;
                    Ok(more || wmore)
                }) {
                    Ok(more) => more,
                    Err(why) => {
                        if let Some(conn) = self.conns.remove(token) {
                            self.finish(token, conn, &why);
                        }
                        return;
                    }
                }
            }
            // The handshake may weigh and close other connections: the
            // connection is lent out of its slot meanwhile.
            Some(_) => {
                let Some(mut conn) = self.conns.lend(token) else {
                    return;
                };
                let mut rbuf = std::mem::take(&mut self.rbuf);
                let res = drive(&mut conn, &mut rbuf, readable, writable, |c, data| {
                    self.received(token, c, data)
                });
                self.rbuf = rbuf;
                match res {
                    Ok(_) if matches!(conn.phase, Phase::Data { .. }) => {
                        self.conns.release(token);
                        return self.hand_off(conn);
                    }
                    Ok(more) => {
                        self.conns.put_back(conn);
                        more
                    }
                    Err(why) => {
                        self.conns.release(token);
                        return self.finish(token, conn, &why);
                    }
                }
            }
        };
        if more {
            self.again.push(token);
        }
    }

    /// Acts on what became of a packet the reactor queued on `token`.
    pub(super) fn pushed(&mut self, token: Token, pushed: Pushed) {
        match pushed {
            Pushed::Done | Pushed::Closed => {}
            Pushed::Wake => self.conn_event(token, None, true),
            Pushed::Over { unsent } => {
                if let Some(conn) = self.conns.remove(token) {
                    let why = over_limit(unsent, self.net.unsent_limit);
                    self.finish(token, conn, &why);
                }
            }
        }
    }
}

/// Drives a connection on an event: completes its TCP connect, reads
/// (passing what arrives to `received`), writes. `Ok(true)`: the read
/// budget ran out, read again next turn.
fn drive(
    conn: &mut Conn,
    rbuf: &mut [u8],
    readable: Option<bool>,
    writable: bool,
    received: impl FnMut(&mut Conn, &[u8]) -> Result<(), String>,
) -> Result<bool, String> {
    if conn.tcp_connecting && !writable && readable.is_none() {
        return Ok(false);
    }
    let more = drive_read(conn, rbuf, readable, received)?;
    conn.flush().map_err(|e| format!("write error: {e}"))?;
    Ok(more)
}

/// [`drive`] but for the write.
fn drive_read(
    conn: &mut Conn,
    rbuf: &mut [u8],
    readable: Option<bool>,
    received: impl FnMut(&mut Conn, &[u8]) -> Result<(), String>,
) -> Result<bool, String> {
    if conn.tcp_connecting {
        if let Ok(Some(e)) | Err(e) = conn.sock.take_error() {
            return Err(format!("connect failed: {e}"));
        }
        match conn.sock.peer_addr() {
            Ok(_) => conn.tcp_connecting = false,
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return Ok(false),
            Err(e) => return Err(format!("connect failed: {e}")),
        }
    }
    let mut more = false;
    if let Some(drain) = readable {
        match conn.read(rbuf, drain, received)? {
            ReadState::Open => {}
            ReadState::More => more = true,
            // A data connection's peer may write and close at once.
            ReadState::Eof if matches!(conn.phase, Phase::Data { .. }) => {}
            ReadState::Eof => {
                return Err(match &mut conn.phase {
                    Phase::Handshake(h) => h.eof().to_string(),
                    Phase::Up { .. } | Phase::Data { .. } => "connection closed by peer".into(),
                })
            }
        }
    }
    Ok(more)
}
