//! Reading a connection from a waiting thread ([`crate::busy::Follow`]).
//!
//! A thread port (or the dispatcher) that sent a packet to another node
//! and now polls for the answer reads that connection itself for as long
//! as it polls, instead of leaving it to the reactor, which would be a
//! second thread polling for the same bytes: a round trip then passes two
//! threads where it passed four, as a raw TCP exchange does.
//!
//! [`Reader`] is a connection's reading side in its data phase, shared by
//! the reactor and at most one follower at a time. Its lock orders them:
//! whoever reads the socket holds it until what was read is handed on, so
//! packets keep their order. While a thread follows, the connection is
//! out of the reactor's read interest (so the reactor is not woken for
//! bytes the follower takes); `end` puts it back, and the poll then
//! reports whatever arrived meanwhile. A follower hands on only messages
//! to ports: a packet for the node port (monitors, kills, the global
//! protocol) goes back to the reactor, with everything after it
//! ([`State::handback`]). Connections under TLS are never followed (the
//! session lives in the reactor).
//!
//! The descriptor registered with the reactor's poll is the senders'
//! handle on the socket (the outbox's, which the reader holds), so interest
//! changes from any thread can never name another socket;
//! [`Reader::close`] (the reactor closing the connection) ends all reading
//! outside the reactor before the connection's monitors fire.

use super::outbox::Outbox;
use super::remote::Remote;
use super::Net;
use crate::transport::Decoder;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use parking_lot::{Mutex, MutexGuard};
use serde_json::Value;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Weak};
use std::time::Instant;

/// A connection's reading side in its data phase.
pub(crate) struct Reader {
    token: Token,
    /// Whether threads may follow it: the outbox has a handle on the
    /// socket (not under TLS), and that handle is registered with the
    /// reactor's poll in place of the reactor's own.
    followable: bool,
    registry: Arc<Registry>,
    net: Weak<Net>,
    remote: Arc<Remote>,
    out: Arc<Outbox>,
    state: Mutex<State>,
}

/// What the lock guards.
pub(crate) struct State {
    pub(crate) dec: Box<Decoder>,
    /// A packet for the node port that a follower read: the reactor routes
    /// it before anything after it (which waits in `dec`).
    pub(crate) handback: Option<Vec<Value>>,
    /// A follower left the reactor work: the hand-back and what waits in
    /// `dec`, or the decoder's failure, to close the connection for.
    pub(crate) left: bool,
    /// False once the reactor closed the connection.
    open: bool,
    following: bool,
    /// The reactor has bytes to write and waits for the socket.
    want_write: bool,
    /// The interest registered now (`None`: none).
    registered: Option<Interest>,
    /// The socket is in the poll's set, maybe with no interest (see
    /// [`park`]).
    in_poll: bool,
}

/// What a follower reads at a time (most answers are small).
const CHUNK: usize = 16 << 10;

/// Reads per turn of a follower's poll; a busier connection goes back to
/// the reactor (see [`Reader::poll`]).
const READS: usize = 4;

impl Reader {
    /// The reading side of a connection that just came up. If the outbox
    /// has a handle on the socket (no TLS), it is registered with the
    /// poll and threads may follow; the caller must deregister its own.
    pub(crate) fn new(
        token: Token,
        registry: Arc<Registry>,
        net: &Arc<Net>,
        remote: Arc<Remote>,
        out: Arc<Outbox>,
        dec: Box<Decoder>,
    ) -> std::io::Result<Reader> {
        let reader = Reader {
            token,
            followable: out.socket().is_some(),
            registry,
            net: Arc::downgrade(net),
            remote,
            out,
            state: Mutex::new(State {
                dec,
                handback: None,
                left: false,
                open: true,
                following: false,
                want_write: true,
                registered: None,
                in_poll: false,
            }),
        };
        if reader.followable {
            reader.apply(&mut reader.state.lock())?;
        }
        Ok(reader)
    }

    /// Whether threads may follow it (see [`new`](Self::new)).
    pub(crate) fn followable(&self) -> bool {
        self.followable
    }

    /// The followers' handle on the socket, registered with the poll.
    fn sock(&self) -> Option<&std::net::TcpStream> {
        self.out.socket().filter(|_| self.followable)
    }

    /// For the reactor: the state, to read the connection (waits while a
    /// follower hands on what it read).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// For the reactor: whether it waits for the socket to take more
    /// bytes (its write would block), so writable events must come.
    pub(crate) fn want_write(&self, want: bool) {
        if !self.followable {
            return;
        }
        let mut st = self.state.lock();
        if st.want_write != want {
            st.want_write = want;
            self.fix(&mut st);
        }
    }

    /// For the reactor: the connection closes. No thread reads it after
    /// this returns; the registration is gone.
    pub(crate) fn close(&self) {
        let mut st = self.state.lock();
        st.open = false;
        st.registered = None;
        if let (Some(sock), true) = (self.sock(), std::mem::take(&mut st.in_poll)) {
            let _ = self.registry.deregister(&mut SourceFd(&sock.as_raw_fd()));
        }
    }

    /// Registers the interest the state calls for: reading unless a
    /// thread follows, writing while the reactor waits to write.
    fn apply(&self, st: &mut State) -> std::io::Result<()> {
        let Some(sock) = self.sock() else {
            return Ok(());
        };
        if !st.open {
            return Ok(());
        }
        let want = match (!st.following, st.want_write) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        };
        if want == st.registered {
            return Ok(());
        }
        let fd = sock.as_raw_fd();
        let src = &mut SourceFd(&fd);
        match want {
            Some(i) if st.in_poll => self.registry.reregister(src, self.token, i)?,
            Some(i) => {
                self.registry.register(src, self.token, i)?;
                st.in_poll = true;
            }
            None => {
                if !park(&self.registry, fd, self.token)? {
                    self.registry.deregister(src)?;
                    st.in_poll = false;
                }
            }
        }
        st.registered = want;
        Ok(())
    }

    /// [`apply`](Self::apply); on failure the reactor is asked to read
    /// (a connection must never be left unread).
    fn fix(&self, st: &mut State) {
        if let Err(e) = self.apply(st) {
            log::error!(
                "connection with {}: cannot change its poll interest: {e}",
                self.remote.id
            );
            self.wake_reactor();
        }
    }

    /// Asks the reactor to read the connection.
    fn wake_reactor(&self) {
        if let Some(net) = self.net.upgrade() {
            net.reactor.read(self.token);
        }
    }
}

impl crate::busy::Follow for Reader {
    fn begin(&self) -> bool {
        if !self.followable {
            return false;
        }
        let Some(mut st) = self.state.try_lock() else {
            return false;
        };
        if !st.open || st.following || st.left {
            return false;
        }
        st.following = true;
        if self.apply(&mut st).is_err() {
            st.following = false;
            self.fix(&mut st);
            return false;
        }
        true
    }

    fn poll(&self) {
        let Some(sock) = self.sock() else {
            return;
        };
        let Some(mut st) = self.state.try_lock() else {
            return;
        };
        if !st.open || !st.following || st.left {
            return;
        }
        BUF.with(|buf| self.read(sock, &mut st, &mut buf.borrow_mut()))
    }

    fn end(&self) {
        let mut st = self.state.lock();
        if st.following {
            st.following = false;
            self.fix(&mut st);
        }
    }
}

/// Takes all interest from `fd`, leaving it in the poll's set: `Ok(false)`
/// where that cannot be done (then it must be deregistered). Changing the
/// interest of a registered descriptor costs the kernel less than taking
/// it out and putting it back, and a follower does one or the other at
/// each end of every wait.
fn park(registry: &Registry, fd: std::os::fd::RawFd, token: Token) -> std::io::Result<bool> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // mio polls with epoll here; edge-triggered, no events: only a
        // hang-up or an error is still reported (the reactor then reads,
        // and finds what happened).
        let mut ev = libc::epoll_event {
            events: libc::EPOLLET as u32,
            u64: token.0 as u64,
        };
        // SAFETY: both descriptors are open (the registry's, and the
        // socket the reader's outbox holds), and `ev` is a valid event.
        let r = unsafe { libc::epoll_ctl(registry.as_raw_fd(), libc::EPOLL_CTL_MOD, fd, &mut ev) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(true)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (registry, fd, token);
        Ok(false)
    }
}

thread_local! {
    /// A follower's read buffer (thread ports may have small stacks).
    static BUF: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0; CHUNK].into());
}

impl Reader {
    /// A follower's turn: reads and routes what arrived (see
    /// [`Follow::poll`](crate::busy::Follow::poll)).
    fn read(&self, sock: &std::net::TcpStream, st: &mut State, buf: &mut [u8]) {
        // The end, an error, or nothing yet (most turns of a poll: one
        // system call and nothing else): the reactor sees the first two
        // once it reads again (see `end`).
        let read = |buf: &mut [u8]| match (&*sock).read(buf) {
            Ok(n @ 1..) => Some(n),
            _ => None,
        };
        let Some(mut n) = read(buf) else {
            return;
        };
        // (Gone: the node is shutting down; what was read goes with it.)
        let Some(net) = self.net.upgrade() else {
            return;
        };
        let Some(node) = net.node() else {
            return;
        };
        let (net, node) = (&net, &node);
        let _batch = crate::context::defer_schedules();
        for turn in 0..READS {
            if turn > 0 {
                n = match read(buf) {
                    Some(n) => n,
                    None => return,
                };
            }
            self.out.received(n, Instant::now());
            let mut data = &buf[..n];
            loop {
                match st.dec.next_packet_from(&mut data) {
                    Ok(Some(packet)) => {
                        self.out.received_packet();
                        if !matches!(packet.first(), Some(Value::String(s)) if !s.is_empty()) {
                            // For the node port (or malformed): the
                            // reactor's, with what follows it.
                            #[cfg(test)]
                            tests::HANDED_BACK.with(|c| c.set(c.get() + 1));
                            st.handback = Some(packet);
                            st.left = true;
                            st.dec.feed(data);
                            return self.wake_reactor();
                        }
                        #[cfg(test)]
                        tests::FOLLOWED.with(|c| c.set(c.get() + 1));
                        if let Err(why) = super::requests::route(net, node, &self.remote, packet) {
                            // Cannot happen for a port's message; the
                            // reactor would close the connection.
                            log::warn!("{}: from {}: {why}", net.id, self.remote.id);
                        }
                    }
                    Ok(None) => break,
                    Err(e) if !e.is_fatal() => {
                        log::warn!("{}: from {}: {e}", net.id, self.remote.id)
                    }
                    // The decoder keeps its failure: the reactor closes
                    // the connection.
                    Err(_) => {
                        st.left = true;
                        return self.wake_reactor();
                    }
                }
            }
            if n < buf.len() {
                return;
            }
        }
        // A stream: the reactor reads it from now on (see `end`).
        st.following = false;
        self.fix(st);
    }
}

#[cfg(test)]
mod tests {
    use crate::{msg, Config, Node, PortId};
    use std::cell::Cell;
    use std::time::Duration;

    thread_local! {
        /// Packets this thread routed while following a connection.
        pub(super) static FOLLOWED: Cell<u64> = const { Cell::new(0) };
        /// Packets for the node port this thread handed back.
        pub(super) static HANDED_BACK: Cell<u64> = const { Cell::new(0) };
    }

    /// A parked socket stays in the poll's set but raises no event for
    /// what arrives; given its interest back, it reports what is waiting.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_parked_socket_is_silent_until_its_interest_returns() {
        use mio::{unix::SourceFd, Events, Interest, Poll, Token};
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (sock, _) = l.accept().unwrap();
        sock.set_nonblocking(true).unwrap();
        let mut poll = Poll::new().unwrap();
        let (fd, token) = (sock.as_raw_fd(), Token(7));
        let src = &mut SourceFd(&fd);
        poll.registry()
            .register(src, token, Interest::READABLE)
            .unwrap();
        assert!(super::park(poll.registry(), fd, token).unwrap());
        peer.write_all(b"ping").unwrap();
        // The bytes are in the socket (a blocking peek waits for them).
        let mut b = [0u8; 4];
        sock.set_nonblocking(false).unwrap();
        assert_eq!(sock.peek(&mut b).unwrap(), 4);
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty(), "a parked socket raised an event");
        poll.registry()
            .reregister(src, token, Interest::READABLE)
            .unwrap();
        poll.poll(&mut events, Some(Duration::from_secs(30)))
            .unwrap();
        let ev = events.iter().next().expect("an event once unparked");
        assert!(ev.token() == token && ev.is_readable());
    }

    fn node(tag: &str) -> Node {
        Node::with_config(
            Config::new(format!("follow-{tag}/%u"))
                .bind("127.0.0.1:0")
                .secret("s"),
        )
        .unwrap()
    }

    fn introduce(a: &Node, b: &Node) {
        let addr = |n: &Node| n.listen_addrs()[0].to_string();
        a.add_address(b.id(), &addr(b)).unwrap();
        b.add_address(a.id(), &addr(a)).unwrap();
    }

    /// A thread port pinging a remote port reads the answers itself, in
    /// order with what the peer sends it before each answer: a message
    /// relayed by its node's port (a request the follower hands back to the
    /// reactor, with what follows it) and a direct one. Nothing is lost or
    /// reordered.
    #[test]
    fn a_waiting_thread_port_reads_its_answers_in_order_with_relayed_messages() {
        let (a, b) = (node("a"), node("b"));
        introduce(&a, &b);
        let (b2, a_node_port) = (b.clone(), PortId::from_parts(a.id().as_str(), ""));
        let mut k = 0u64;
        let echo = b.port_fn(move |m| {
            let Ok(reply) = PortId::try_from(&m[0]) else {
                return;
            };
            b2.snd(&a_node_port, msg!["snd", &reply, "s", k]);
            b2.snd(&reply, msg!["s", k + 1]);
            k += 2;
            b2.snd(&reply, m[1..].iter().cloned().collect());
        });
        const ROUNDS: u64 = 2_000;
        let (tx, rx) = crossbeam_channel::bounded(1);
        a.port_thread(move |mb| -> crate::Result<()> {
            let me = mb.port().clone();
            let mut next = 0u64;
            let before = (FOLLOWED.with(Cell::get), HANDED_BACK.with(Cell::get));
            let seen = || {
                (
                    FOLLOWED.with(Cell::get) - before.0,
                    HANDED_BACK.with(Cell::get) - before.1,
                )
            };
            // At least ROUNDS, and on (for a minute at most: a loaded
            // machine may leave no time to poll) until both were seen.
            let start = std::time::Instant::now();
            for i in 0.. {
                let (followed, handed_back) = seen();
                let both = followed > 0 && handed_back > 0;
                if i >= ROUNDS && (both || start.elapsed() > Duration::from_secs(60)) {
                    break;
                }
                mb.node().snd(&echo, msg![&me, "pong", i]);
                loop {
                    let m = mb
                        .get_timeout(Duration::from_secs(30))?
                        .expect("an answer within 30 s");
                    match m.tag() {
                        Some("pong") => {
                            assert_eq!((&m[1], next), (&i.into(), 2 * i + 2), "in order");
                            break;
                        }
                        Some("s") => {
                            assert_eq!(m[1], next, "in order");
                            next += 1;
                        }
                        _ => panic!("unexpected {m}"),
                    }
                }
            }
            let _ = tx.send(seen());
            Ok(())
        });
        let (followed, handed_back) = rx
            .recv_timeout(Duration::from_secs(180))
            .expect("the thread port finished");
        assert!(
            followed > 0,
            "the waiting thread port never read its connection itself"
        );
        assert!(handed_back > 0, "no node-port packet was handed back");
    }

    /// After a thread stopped following (its poll ended, it sleeps), the
    /// reactor reads the connection again: a later message still comes.
    #[test]
    fn after_following_the_reactor_reads_again() {
        let (a, b) = (node("c"), node("d"));
        introduce(&a, &b);
        let b2 = b.clone();
        let echo = b.port_fn(move |m| {
            if let Ok(reply) = PortId::try_from(&m[0]) {
                b2.snd(&reply, msg!["pong"]);
            }
        });
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (asleep_tx, asleep_rx) = crossbeam_channel::bounded(1);
        let t = a.port_thread(move |mb| -> crate::Result<()> {
            let me = mb.port().clone();
            let before = FOLLOWED.with(Cell::get);
            // Round trips until one answer was read by this thread.
            let start = std::time::Instant::now();
            while FOLLOWED.with(Cell::get) == before {
                assert!(start.elapsed() < Duration::from_secs(60), "never followed");
                mb.node().snd(&echo, msg![&me]);
                assert_eq!(mb.get()?, msg!["pong"]);
            }
            // Nothing comes for the whole poll: it ends, the thread sleeps.
            asleep_tx.send(()).unwrap();
            let _ = tx.send(mb.get_timeout(Duration::from_secs(30))?);
            Ok(())
        });
        asleep_rx.recv_timeout(Duration::from_secs(90)).unwrap();
        // Long past the poll's budget (100 µs), whatever the load.
        std::thread::sleep(Duration::from_millis(50));
        b.snd(&t, msg!["later"]);
        let got = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(got, Some(msg!["later"]));
    }
}
