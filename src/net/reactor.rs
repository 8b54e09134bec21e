//! The reactor: one mio thread per networked node owning its listeners
//! and connections. It accepts, connects (addresses in turn,
//! `connect_interval` apart, until `monitor_timeout`; the node's monitors
//! fire after `connect_interval` without a connection), drives handshakes,
//! writes outgoing buffers and routes incoming packets into port inboxes.
//! On its timer it also runs the seeds' rounds (`seeds.rs`).
//! It never runs user code and never blocks except in `poll`.

use super::conn::{Conn, Phase, ReadState};
use super::dial::{jitter, spacing, Dial};
use super::duplicate::{self, Decision};
use super::outbox::Pushed;
use super::remote::{DialState, Remote};
use super::tls::Tls;
use super::{requests, Net, PeerEvent};
use crate::busy::BusyWait;
use crate::error::{Error, Result};
use crate::transport::{Decoder, Event, Handshake};
use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAKER: Token = Token(0);
const FIRST_CONN: usize = 1 << 16;

enum Cmd {
    Flush(Token),
    Dial(Arc<Remote>),
    Connect(String, Vec<SocketAddr>),
    Cut(String),
    /// New addresses for a node: try them now.
    Poke(String),
    /// Run the seeds' round now (`seeds.rs`).
    Seeds,
    /// The connection's unsent bytes passed the limit.
    OverLimit(Token, usize),
    Shutdown,
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

    pub(crate) fn cut(&self, node: String) {
        self.send(Cmd::Cut(node));
    }

    pub(crate) fn shutdown(&self) {
        self.send(Cmd::Shutdown);
    }
}

type Starter = Box<dyn FnOnce(Arc<Net>) -> Result<()>>;

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
        let reactor = Reactor {
            net,
            poll,
            cmds: rx,
            listeners,
            conns: HashMap::new(),
            next: FIRST_CONN,
            dials: HashMap::new(),
            greeted: HashMap::new(),
            again: Vec::new(),
            rbuf: vec![0; 64 << 10],
            accept_retry: None,
            heartbeat_next,
            seeds_next: Instant::now(),
        };
        std::thread::Builder::new()
            .name(name)
            .spawn(move || reactor.run())
            .map(drop)
            .map_err(start_err)
    });
    Ok((handle, addrs, start))
}

/// The reason a connection fails when its outgoing buffer is full.
fn over_limit(unsent: usize, limit: usize) -> String {
    format!(
        "outgoing buffer over its limit ({unsent} bytes unsent, unsent_limit {limit}): the peer does not read"
    )
}

struct Reactor {
    net: Arc<Net>,
    poll: Poll,
    cmds: Receiver<Cmd>,
    listeners: Vec<TcpListener>,
    conns: HashMap<Token, Conn>,
    next: usize,
    dials: HashMap<String, Dial>,
    /// Node ID → the connection that passed its greeting (handshaking or up).
    greeted: HashMap<String, Token>,
    /// Connections whose read budget ran out: read again next turn.
    again: Vec<Token>,
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

/// How long after a failed accept the listeners are tried again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

impl Reactor {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut busy = BusyWait::new(self.net.busy_wait);
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
                if !self.command(cmd) {
                    return self.shutdown();
                }
            }
            for token in std::mem::take(&mut self.again) {
                self.conn_event(token, Some(true), false);
            }
            self.timers();
        }
    }

    /// Handles a command; false to stop.
    fn command(&mut self, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Flush(token) => {
                log::trace!("{}: flush {token:?}", self.net.id);
                self.conn_event(token, None, true)
            }
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
                    if let Some(conn) = self.conns.remove(&token) {
                        self.finish(token, conn, "connection cut (test hook)");
                    }
                }
            }
            Cmd::OverLimit(token, unsent) => {
                if let Some(conn) = self.conns.remove(&token) {
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
            Cmd::Shutdown => return false,
        }
        true
    }

    fn shutdown(mut self) {
        for (token, conn) in std::mem::take(&mut self.conns) {
            self.finish(token, conn, "the local node shut down its network");
        }
        for (_, dial) in std::mem::take(&mut self.dials) {
            self.net
                .fail(&dial.remote, None, "the local node shut down its network");
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let hs = self.conns.values().filter_map(|c| match &c.phase {
            Phase::Handshake(h) => Some(h.deadline()),
            Phase::Up { .. } => None,
        });
        let dials = self.dials.iter().map(|(k, d)| {
            if self.dial_busy(k, d) {
                d.deadline
            } else {
                d.next_at
                    .min(d.deadline)
                    .min(d.fire_at.unwrap_or(d.deadline))
            }
        });
        hs.chain(dials)
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
            .filter(|(_, c)| matches!(&c.phase, Phase::Handshake(h) if h.deadline() <= now))
            .map(|(t, _)| *t)
            .collect();
        for token in expired {
            if let Some(conn) = self.conns.remove(&token) {
                self.finish(token, conn, "handshake timed out");
            }
        }
        let due: Vec<String> = self
            .dials
            .iter()
            .filter(|(_, d)| {
                d.next_at <= now || d.deadline <= now || d.fire_at.is_some_and(|t| t <= now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(mut dial) = self.dials.remove(&key) else {
                continue;
            };
            let link = dial.remote.dial_state();
            if link == DialState::Up || (link != DialState::Connecting && dial.fire_at.is_some()) {
                // Connected, or no longer wanted.
                continue;
            }
            let busy = self.dial_busy(&key, &dial);
            let over = dial.deadline <= now;
            let fire = dial.fire_at.is_some_and(|t| t <= now) && !busy;
            if link == DialState::Connecting && (over || fire) {
                // No connection within `connect_interval`: the monitors
                // fire and the queue goes (a handshake under way gets its
                // own time first). The attempts go on until
                // `monitor_timeout`, so the node is connected when it
                // comes up.
                self.net.fail(&dial.remote, None, "connect timeout");
                dial.fire_at = None;
            }
            if over {
                continue;
            }
            if busy || dial.next_at > now || link == DialState::Settling {
                // Not its turn; or a handshake with the node is under way
                // (a second connection would only race it); or its
                // monitors are firing (a connection must wait for them).
                self.dials.insert(key, dial);
                continue;
            }
            if let Some(t) = dial.attempt.take() {
                // Still connecting after its turn: give up on that address.
                if let Some(c) = self.conns.remove(&t) {
                    self.finish(t, c, "no answer within connect_interval");
                }
            }
            let known = self
                .net
                .addresses
                .lock()
                .get(&key)
                .cloned()
                .unwrap_or_default();
            if known.is_empty() || (dial.next > 0 && dial.next % known.len() == 0) {
                // Discovery: ask the master for its listen addresses (also
                // when every known one was tried: they may be stale).
                self.net
                    .events()
                    .event(&self.net, PeerEvent::NeedAddress(&key));
            }
            if !known.is_empty() {
                let (text, addr) = known[dial.next % known.len()].clone();
                dial.next += 1;
                dial.attempt = self.start_connect(addr, text, Some(dial.remote.clone()));
            }
            dial.next_at = now
                + spacing(
                    self.net.connect_interval,
                    self.net.monitor_timeout,
                    known.len(),
                );
            self.dials.insert(key, dial);
        }
    }

    /// The heartbeat (see [`Config::tick`](crate::Config::tick)): a
    /// connection silent for a tick is probed; one whose probe has gone
    /// unanswered for two more ticks is dead. Silence alone never kills:
    /// after this node itself was stopped, its peers get a fresh probe.
    fn heartbeats(&mut self, now: Instant) {
        let tick = self.net.tick;
        let mut dead = Vec::new();
        let mut probe = Vec::new();
        for (token, c) in &self.conns {
            if !matches!(c.phase, Phase::Up { .. }) || now.duration_since(c.last_rx) < tick {
                continue;
            }
            match c.heartbeat_at {
                Some(t) if t > c.last_rx && now.duration_since(t) >= 2 * tick => {
                    dead.push((*token, now.duration_since(c.last_rx)))
                }
                Some(t) if t > c.last_rx => {}
                _ => probe.push(*token),
            }
        }
        for (token, silent) in dead {
            if let Some(conn) = self.conns.remove(&token) {
                let why = format!(
                    "no answer for {:.1} s (heartbeat, tick {:.1} s)",
                    silent.as_secs_f64(),
                    tick.as_secs_f64()
                );
                self.finish(token, conn, &why);
            }
        }
        for token in probe {
            let Some(c) = self.conns.get_mut(&token) else {
                continue;
            };
            c.heartbeat_at = Some(now);
            if let Phase::Up { out, .. } = &c.phase {
                let pushed = out.heartbeat(self.net.id.as_str());
                self.pushed(token, pushed);
            }
        }
    }

    /// A connection attempt to `node` ended without a connection (refused,
    /// or closed in the handshake, e.g. while the node's end of a lost
    /// connection still fires its monitors): before the connect timeout,
    /// the next attempt comes sooner than `connect_interval`, so that one
    /// refusal does not use up the whole time.
    fn attempt_failed(&mut self, node: &str, token: Token) {
        let soon = Instant::now() + jitter(self.net.connect_interval / 4);
        if let Some(d) = self.dials.get_mut(node) {
            if d.attempt == Some(token) && d.fire_at.is_some() {
                d.next_at = d.next_at.min(soon);
            }
        }
    }

    /// Whether a handshake with the dialed node is running: our latest
    /// attempt past its TCP connect, or a connection from the node.
    fn dial_busy(&self, key: &str, dial: &Dial) -> bool {
        let ours = dial
            .attempt
            .and_then(|t| self.conns.get(&t))
            .is_some_and(|c| !c.tcp_connecting);
        let theirs = self
            .greeted
            .get(key)
            .and_then(|t| self.conns.get(t))
            .is_some_and(|c| matches!(c.phase, Phase::Handshake(_)));
        ours || theirs
    }

    fn handshake(&self, addr: &str) -> Box<Handshake> {
        let mut cfg = self.net.hs.clone();
        cfg.extra.push(("peeraddr".into(), addr.to_string()));
        Box::new(Handshake::new(cfg, Instant::now()))
    }

    fn add_conn(
        &mut self,
        mut sock: TcpStream,
        addr: String,
        dialed: Option<Option<Arc<Remote>>>,
    ) -> Option<Token> {
        if let Err(e) = sock.set_nodelay(self.net.nodelay) {
            log::debug!("set_nodelay on {addr}: {e}");
        }
        if let Err(e) = socket2::SockRef::from(&sock).set_keepalive(true) {
            log::debug!("keepalive on {addr}: {e}");
        }
        let token = Token(self.next);
        self.next += 1;
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
        let mut hs = self.handshake(&addr);
        let wbuf = hs.take_output();
        let tcp_connecting = dialed.is_some();
        self.conns.insert(
            token,
            Conn {
                sock,
                addr,
                dialed,
                tcp_connecting,
                phase: Phase::Handshake(hs),
                tls: None,
                peer: None,
                wbuf,
                wpos: 0,
                last_rx: Instant::now(),
                heartbeat_at: None,
                probed: None,
            },
        );
        if !tcp_connecting {
            self.conn_event(token, Some(true), true);
        }
        Some(token)
    }

    fn start_connect(
        &mut self,
        addr: SocketAddr,
        text: String,
        expected: Option<Arc<Remote>>,
    ) -> Option<Token> {
        match TcpStream::connect(addr) {
            Ok(sock) => self.add_conn(sock, text, Some(expected)),
            Err(e) => {
                log::info!("{}: cannot connect to {text}: {e}", self.net.id);
                None
            }
        }
    }

    fn accept(&mut self, i: usize) {
        loop {
            let Some(l) = self.listeners.get(i) else {
                return;
            };
            match l.accept() {
                Ok((sock, addr)) => {
                    self.add_conn(sock, addr.to_string(), None);
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
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        if let Err(why) = self.drive(token, &mut conn, readable, writable) {
            return self.finish(token, conn, &why);
        }
        self.conns.insert(token, conn);
    }

    fn drive(
        &mut self,
        token: Token,
        conn: &mut Conn,
        readable: Option<bool>,
        writable: bool,
    ) -> Result<(), String> {
        if conn.tcp_connecting {
            if !writable && readable.is_none() {
                return Ok(());
            }
            if let Ok(Some(e)) | Err(e) = conn.sock.take_error() {
                return Err(format!("connect failed: {e}"));
            }
            match conn.sock.peer_addr() {
                Ok(_) => conn.tcp_connecting = false,
                Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connect failed: {e}")),
            }
        }
        if let Some(drain) = readable {
            let mut rbuf = std::mem::take(&mut self.rbuf);
            let res = conn.read(&mut rbuf, drain, |c, data| self.received(token, c, data));
            self.rbuf = rbuf;
            match res? {
                ReadState::Open => {}
                ReadState::More => self.again.push(token),
                ReadState::Eof => {
                    return Err(match &mut conn.phase {
                        Phase::Handshake(h) => h.eof().to_string(),
                        Phase::Up { .. } => "connection closed by peer".into(),
                    })
                }
            }
        }
        conn.flush().map_err(|e| format!("write error: {e}"))
    }

    /// Bytes arrived on `conn` (ciphertext once TLS runs).
    fn received(&mut self, token: Token, conn: &mut Conn, data: &[u8]) -> Result<(), String> {
        if let Phase::Up { out, .. } = &conn.phase {
            out.received(data.len(), conn.last_rx);
        }
        let Some(tls) = conn.tls.as_mut() else {
            return self.received_plain(token, conn, data);
        };
        let mut plain = Vec::new();
        let ready = tls.feed(data, &mut plain)?;
        let cipher = tls.take_output();
        conn.wbuf.extend_from_slice(&cipher);
        if ready {
            if let Phase::Handshake(hs) = &mut conn.phase {
                hs.tls_established().map_err(|e| e.to_string())?;
                let out = hs.take_output();
                conn.send_plain(&out)?;
            }
        }
        if plain.is_empty() {
            return Ok(());
        }
        self.received_plain(token, conn, &plain)
    }

    /// Plaintext arrived on `conn`.
    fn received_plain(&mut self, token: Token, conn: &mut Conn, data: &[u8]) -> Result<(), String> {
        let events = match &mut conn.phase {
            Phase::Handshake(hs) => {
                let events = hs.feed(data).map_err(|e| e.to_string());
                let out = hs.take_output();
                conn.send_plain(&out)?;
                events?
            }
            Phase::Up { dec, .. } => {
                dec.feed(data);
                return self.packets(conn);
            }
        };
        for ev in events {
            match ev {
                Event::PeerGreeting { node_id, .. } => self.greeting(token, conn, node_id)?,
                Event::StartTls { client, ciphertext } => {
                    let cfg = self
                        .net
                        .tls
                        .as_ref()
                        .ok_or("TLS requested, but this node has no certificate")?;
                    let mut tls = Box::new(Tls::start(cfg, client)?);
                    let hello = tls.take_output();
                    conn.wbuf.extend_from_slice(&hello);
                    conn.tls = Some(tls);
                    // The handshake stops at StartTls: this was the last event.
                    return self.received(token, conn, &ciphertext);
                }
                Event::Established(est) => {
                    let remote = match &conn.peer {
                        Some(r) => r.clone(),
                        None => self.net.remote(&est.peer_node_id),
                    };
                    // Senders write directly when the connection is idle
                    // (not under TLS: the session lives here).
                    let writer = if conn.tls.is_some() {
                        None
                    } else {
                        conn.sock
                            .as_fd()
                            .try_clone_to_owned()
                            .map(std::net::TcpStream::from)
                            .ok()
                    };
                    let out = self
                        .net
                        .established(&remote, token, est.send_framing, writer)
                        .ok_or("a connection to that node is already up")?;
                    self.dials.remove(remote.id.as_str());
                    self.net.peer_up(remote.id.as_str());
                    let mut dec = Box::new(Decoder::new(est.recv_framing));
                    dec.feed(&est.leftover);
                    out.received(est.leftover.len(), conn.last_rx);
                    out.set_preamble(conn.wbuf.len() - conn.wpos);
                    let over = out.is_closed();
                    let unsent = out.unsent();
                    conn.phase = Phase::Up { remote, out, dec };
                    if over {
                        // What was queued while connecting passed the limit.
                        return Err(over_limit(unsent, self.net.unsent_limit));
                    }
                    return self.packets(conn);
                }
            }
        }
        Ok(())
    }

    /// The peer's greeting line 1 passed: decide whether this connection
    /// may go on (the duplicate-connection rule: `duplicate.rs`).
    fn greeting(&mut self, token: Token, conn: &mut Conn, node_id: String) -> Result<(), String> {
        let remote = self.net.remote(&node_id);
        if let Some(None) = conn.dialed {
            self.net.seed_greeted(&conn.addr, &node_id);
        }
        if let Some(Some(expected)) = &conn.dialed {
            if expected.id.as_str() != node_id {
                return Err(format!(
                    "expected node {} but {node_id} answered",
                    expected.id
                ));
            }
        }
        let link = self.net.greeting_link(&remote);
        let now = Instant::now();
        let existing = match link {
            duplicate::Link::Up(old) if old != token => self.conns.get(&old),
            _ => None,
        };
        let racing = self
            .greeted
            .get(&node_id)
            .filter(|&&other| other != token)
            .and_then(|other| self.conns.get(other));
        let decision = duplicate::decide(&duplicate::Meeting {
            us: self.net.id.as_str(),
            peer: &node_id,
            this: token,
            ours: conn.dialed.is_some(),
            link,
            existing: existing.map(|c| duplicate::Existing {
                last_rx: c.last_rx,
                probed: c.probed,
            }),
            racing: racing.map(|c| duplicate::Racing {
                auth_sent: matches!(&c.phase, Phase::Handshake(h) if h.auth_sent()),
                ours: c.dialed.is_some(),
            }),
            now,
            connect_interval: self.net.connect_interval,
        });
        if let (Some(None), true) = (&conn.dialed, decision.link_free()) {
            // Node::connect: now we know whose address this is.
            if let Ok(a) = conn.sock.peer_addr() {
                self.net.learn(&node_id, &conn.addr, vec![a]);
            }
        }
        self.duplicate(decision, link, self.greeted.get(&node_id).copied(), now);
        if let Some(why) = decision.refusal() {
            return Err(why.into());
        }
        self.greeted.insert(node_id, token);
        conn.peer = Some(remote);
        Ok(())
    }

    /// Acts on the duplicate-connection rule's decision on the other
    /// connections with the node: the one `link` is up over, the racing
    /// handshake `greeted`.
    fn duplicate(
        &mut self,
        decision: Decision,
        link: duplicate::Link,
        greeted: Option<Token>,
        now: Instant,
    ) {
        match (decision, link, greeted) {
            (Decision::RefuseSwitch, duplicate::Link::Up(old), _) => {
                if let Some(c) = self.conns.remove(&old) {
                    self.finish(old, c, duplicate::SWITCHED);
                }
            }
            (Decision::RefuseKeepExisting { mark }, duplicate::Link::Up(old), _) => {
                let Some(c) = self.conns.get_mut(&old) else {
                    return;
                };
                if mark {
                    c.probed = Some(now);
                }
                if let Phase::Up { out, .. } = &c.phase {
                    let pushed = out.probe();
                    self.pushed(old, pushed);
                }
            }
            (Decision::AcceptCloseRacing, _, Some(other)) => {
                if let Some(c) = self.conns.remove(&other) {
                    self.finish(other, c, duplicate::RACING);
                }
            }
            _ => {}
        }
    }

    /// Acts on what became of a packet the reactor queued on `token`.
    fn pushed(&mut self, token: Token, pushed: Pushed) {
        match pushed {
            Pushed::Done | Pushed::Closed => {}
            Pushed::Wake => self.conn_event(token, None, true),
            Pushed::Over { unsent } => {
                if let Some(conn) = self.conns.remove(&token) {
                    let why = over_limit(unsent, self.net.unsent_limit);
                    self.finish(token, conn, &why);
                }
            }
        }
    }

    /// Routes every complete packet buffered in the decoder.
    fn packets(&mut self, conn: &mut Conn) -> Result<(), String> {
        let Phase::Up { remote, dec, out } = &mut conn.phase else {
            return Ok(());
        };
        let node = self.net.node().ok_or("the local node is gone")?;
        let _batch = crate::context::defer_schedules();
        loop {
            match dec.next_packet() {
                Ok(Some(packet)) => {
                    out.received_packet();
                    requests::route(&self.net, &node, remote, packet)?
                }
                Ok(None) => return Ok(()),
                // One bad value never takes the connection down.
                Err(e) if !e.is_fatal() => {
                    log::warn!("{}: from {}: {e}", self.net.id, remote.id)
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Closes a connection (already removed from `conns`).
    fn finish(&mut self, token: Token, mut conn: Conn, why: &str) {
        if let (Some(Some(remote)), Phase::Handshake(_)) = (&conn.dialed, &conn.phase) {
            self.attempt_failed(remote.id.as_str(), token);
        }
        let _ = self.poll.registry().deregister(&mut conn.sock);
        // Senders may hold a second handle on the socket: shut it down so
        // the peer sees the end now.
        let _ = conn.sock.shutdown(std::net::Shutdown::Both);
        if let Some(peer) = &conn.peer {
            if self.greeted.get(peer.id.as_str()) == Some(&token) {
                self.greeted.remove(peer.id.as_str());
            }
        }
        match &conn.phase {
            Phase::Up { remote, out, .. } => {
                out.close();
                self.net.fail(remote, Some(token), why)
            }
            Phase::Handshake(_) if why.starts_with("simultaneous") => {
                log::debug!(
                    "{}: closing connection with {}: {why}",
                    self.net.id,
                    conn.who()
                )
            }
            Phase::Handshake(_) => {
                log::warn!(
                    "{}: connection with {} failed: {why}",
                    self.net.id,
                    conn.who()
                )
            }
        }
    }
}
