//! The handshake as a pure state machine (protocol notes §1–6): bytes in,
//! bytes and [`Event`]s out, no sockets and no clock of its own.
//!
//! A driver:
//! 1. creates a [`Handshake`] (which queues our two greeting lines) and
//!    writes [`take_output`](Handshake::take_output) to the socket;
//! 2. passes every received chunk to [`feed`](Handshake::feed) and acts on
//!    the returned events, writing any new output after each call;
//! 3. on [`Event::PeerGreeting`] may drop the handshake (e.g. it already has
//!    a connection to that node);
//! 4. on [`Event::StartTls`] flushes the output written so far in the
//!    clear, starts TLS in the given role, feeds the event's `ciphertext` to
//!    TLS, then calls [`tls_established`](Handshake::tls_established) and from
//!    then on feeds *decrypted* bytes and encrypts all output;
//! 5. on [`Event::Established`] switches to the data phase: encode with
//!    `send_framing`, decode `leftover` and later bytes with `recv_framing`.
//!
//! Timeouts: the driver calls [`check_timeout`](Handshake::check_timeout)
//! with the current time (or closes at [`deadline`](Handshake::deadline)),
//! and reports a closed connection with [`eof`](Handshake::eof). Every error
//! means "close the connection"; after one, every call returns it again.

use std::time::{Duration, Instant};

use super::auth::{self, AuthLine, AuthMethod, Trust};
use super::error::{Error, Result};
use super::framing::Framing;
use super::greeting::{self, Greeting, PROTOCOL, PROTOCOL_VERSION};

/// The longest handshake line accepted, without its line ending.
pub const MAX_LINE: usize = 4096;

/// Default handshake timeout (`monitor_timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What our end of the handshake offers and accepts.
///
/// Its `Debug` output hides the secret.
#[derive(Clone)]
pub struct Config {
    /// Our node ID.
    pub node_id: String,
    /// The shared secret, if configured.
    pub secret: Option<Vec<u8>>,
    /// Whether a TLS certificate is configured (we then send `tls=1.0`).
    pub have_cert: bool,
    /// Methods we are willing to send (only `tls_sha3_512` and
    /// `hmac_sha3_512` are ever sent).
    pub auth_offer: Vec<AuthMethod>,
    /// Methods we accept from the peer, preferred first (greeting field 4).
    pub auth_accept: Vec<AuthMethod>,
    /// Framings we accept, preferred first (greeting field 5).
    pub framings: Vec<Framing>,
    /// The `provider` value, e.g. `aemp-0.1.0`.
    pub provider: String,
    /// Greeting field 1: `aemp`, or an extension id like `aemp-dataconn`.
    pub protocol: String,
    /// Extension protocols (e.g. `aemp-dataconn`) a peer may switch an
    /// `aemp` handshake to by naming one in its greeting (a listener greets
    /// with `aemp` before it can know); empty: only `protocol` is spoken.
    pub extensions: Vec<String>,
    /// Further `key=value` fields (e.g. `peeraddr`), sent after `provider`.
    pub extra: Vec<(String, String)>,
    /// How long the whole handshake may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("node_id", &self.node_id)
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("have_cert", &self.have_cert)
            .field("auth_offer", &self.auth_offer)
            .field("auth_accept", &self.auth_accept)
            .field("framings", &self.framings)
            .field("provider", &self.provider)
            .field("protocol", &self.protocol)
            .field("extensions", &self.extensions)
            .field("extra", &self.extra)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Config {
    /// Perl-compatible defaults: offer `tls_sha3_512,hmac_sha3_512`, accept
    /// all four methods, framings `cbor,json`, `mproto=1;gproto=1`, 30 s.
    pub fn new(node_id: impl Into<String>) -> Config {
        Config {
            node_id: node_id.into(),
            secret: None,
            have_cert: false,
            auth_offer: vec![AuthMethod::TlsSha3_512, AuthMethod::HmacSha3_512],
            auth_accept: AuthMethod::ALL.to_vec(),
            framings: Framing::ALL.to_vec(),
            provider: concat!("aemp-", env!("CARGO_PKG_VERSION")).to_owned(),
            protocol: PROTOCOL.to_owned(),
            extensions: Vec::new(),
            extra: vec![("mproto".into(), "1".into()), ("gproto".into(), "1".into())],
            timeout: DEFAULT_TIMEOUT,
        }
    }

    fn greeting(&self) -> Greeting {
        let mut kv = vec![("provider".to_owned(), self.provider.clone())];
        kv.extend(self.extra.iter().cloned());
        if self.have_cert {
            kv.push(("tls".into(), "1.0".into()));
        }
        Greeting {
            protocol: self.protocol.clone(),
            version: PROTOCOL_VERSION.to_owned(),
            node_id: self.node_id.clone(),
            auths: self
                .auth_accept
                .iter()
                .map(|m| m.name().to_owned())
                .collect(),
            framings: self.framings.iter().map(|f| f.name().to_owned()).collect(),
            kv,
        }
    }
}

/// Something the driver must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer's greeting line 1 passed the checks. The driver may drop
    /// the handshake now, e.g. if it already has a connection to `node_id`.
    PeerGreeting {
        /// The peer's node ID.
        node_id: String,
        /// The whole parsed line.
        greeting: Greeting,
    },
    /// Both ends must switch to TLS now (protocol notes §5).
    StartTls {
        /// Whether we are the TLS client (our nonce text is the smaller).
        client: bool,
        /// Bytes already received after the nonce line: the start of the
        /// peer's TLS stream; feed them to TLS, not back to the handshake.
        ciphertext: Vec<u8>,
    },
    /// The handshake succeeded.
    Established(Box<Established>),
}

/// The outcome of a successful handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Established {
    /// The peer's node ID.
    pub peer_node_id: String,
    /// The peer's greeting line 1 (its key/values included).
    pub peer_greeting: Greeting,
    /// The framing we encode our packets with (the peer's preference).
    pub send_framing: Framing,
    /// The framing the peer encodes its packets with.
    pub recv_framing: Framing,
    /// The auth method the peer used.
    pub peer_auth: AuthMethod,
    /// False when the peer authenticated with `tls_anon`.
    pub trusted: bool,
    /// Whether the connection runs over TLS.
    pub tls: bool,
    /// Bytes received after the peer's auth line: its first packets.
    pub leftover: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Line1,
    Line2,
    AwaitTls,
    Auth,
    Done,
}

/// One end of a handshake. See the [module docs](self) for the driver's part.
#[derive(Debug)]
pub struct Handshake {
    cfg: Config,
    state: State,
    failed: Option<Error>,
    own1: String,
    own2: String,
    peer1: Vec<u8>,
    peer2: Vec<u8>,
    peer: Option<Greeting>,
    send_framing: Option<Framing>,
    tls: bool,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    deadline: Instant,
}

impl Handshake {
    /// Starts a handshake with a fresh random nonce; our greeting lines are
    /// queued as output at once.
    pub fn new(cfg: Config, now: Instant) -> Handshake {
        Handshake::with_nonce(cfg, now, greeting::generate_nonce())
    }

    /// Like [`new`](Handshake::new) with a given nonce (tests; CR and LF are
    /// removed).
    pub fn with_nonce(cfg: Config, now: Instant, nonce: String) -> Handshake {
        let own1 = cfg.greeting().encode();
        Handshake::with_lines(cfg, now, own1, nonce)
    }

    /// Like [`new`](Handshake::new) but sends exactly the given greeting
    /// lines (for replaying captures; CR and LF are removed). Line 1 should
    /// agree with `cfg`, which still decides what is accepted.
    pub fn with_lines(cfg: Config, now: Instant, line1: String, nonce: String) -> Handshake {
        let no_eol =
            |s: String| -> String { s.chars().filter(|&c| c != '\r' && c != '\n').collect() };
        let (own1, own2) = (no_eol(line1), no_eol(nonce));
        let out = format!("{own1}\n{own2}\n").into_bytes();
        Handshake {
            deadline: now + cfg.timeout,
            cfg,
            state: State::Line1,
            failed: None,
            own1,
            own2,
            peer1: Vec::new(),
            peer2: Vec::new(),
            peer: None,
            send_framing: None,
            tls: false,
            inbuf: Vec::new(),
            out,
        }
    }

    /// Our two greeting lines, without line endings.
    pub fn own_lines(&self) -> (&str, &str) {
        (&self.own1, &self.own2)
    }

    /// Takes the bytes to send to the peer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether the handshake completed successfully.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether our auth line was queued: from then on the peer may
    /// complete the handshake (and use the connection) before we do.
    pub fn auth_sent(&self) -> bool {
        matches!(self.state, State::Auth | State::Done)
    }

    /// The error the handshake failed with, if it did.
    pub fn error(&self) -> Option<&Error> {
        self.failed.as_ref()
    }

    /// When the handshake must have completed.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Fails the handshake with [`Error::Timeout`] if `now` is past the
    /// deadline and it has not finished.
    pub fn check_timeout(&mut self, now: Instant) -> Result<()> {
        self.check_failed()?;
        if self.state != State::Done && now >= self.deadline {
            return self.fail(Error::Timeout);
        }
        Ok(())
    }

    /// Reports that the peer closed the connection; returns the error to log.
    pub fn eof(&mut self) -> Error {
        if let Some(e) = &self.failed {
            return e.clone();
        }
        self.failed = Some(Error::Eof);
        Error::Eof
    }

    /// Consumes received bytes (decrypted ones once TLS runs).
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<Event>> {
        self.check_failed()?;
        match self.state {
            State::AwaitTls => return Err(Error::Misuse("bytes fed while waiting for TLS")),
            State::Done => return Err(Error::Misuse("bytes fed after the handshake")),
            _ => {}
        }
        self.inbuf.extend_from_slice(data);
        let mut events = Vec::new();
        match self.run(&mut events) {
            Ok(()) => Ok(events),
            Err(e) => self.fail(e),
        }
    }

    /// Tells the machine that TLS is up (after [`Event::StartTls`]); it then
    /// queues our auth line, to be sent through TLS.
    pub fn tls_established(&mut self) -> Result<()> {
        self.check_failed()?;
        if self.state != State::AwaitTls {
            return Err(Error::Misuse("tls_established without StartTls"));
        }
        match self.send_auth() {
            Ok(()) => {
                self.state = State::Auth;
                Ok(())
            }
            Err(e) => self.fail(e),
        }
    }

    fn check_failed(&self) -> Result<()> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn fail<T>(&mut self, e: Error) -> Result<T> {
        self.failed = Some(e.clone());
        Err(e)
    }

    fn run(&mut self, events: &mut Vec<Event>) -> Result<()> {
        while let Some(line) = self.next_line()? {
            match self.state {
                State::Line1 => self.on_line1(line, events)?,
                State::Line2 => self.on_line2(line, events)?,
                State::Auth => self.on_auth(&line, events)?,
                State::AwaitTls | State::Done => break,
            }
        }
        Ok(())
    }

    /// The next complete line without its ending, if one is buffered and
    /// the current state reads lines.
    fn next_line(&mut self) -> Result<Option<Vec<u8>>> {
        if matches!(self.state, State::AwaitTls | State::Done) {
            return Ok(None);
        }
        let Some(lf) = self.inbuf.iter().position(|&b| b == b'\n') else {
            // One more byte than MAX_LINE may still be a CR.
            if self.inbuf.len() > MAX_LINE + 1 {
                return Err(Error::LineTooLong(self.inbuf.len()));
            }
            return Ok(None);
        };
        let mut line: Vec<u8> = self.inbuf.drain(..=lf).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > MAX_LINE {
            return Err(Error::LineTooLong(line.len()));
        }
        Ok(Some(line))
    }

    fn on_line1(&mut self, line: Vec<u8>, events: &mut Vec<Event>) -> Result<()> {
        let g = Greeting::parse(&line)?;
        // The protocol both ends speak: ours; or an extension the peer
        // switches our `aemp` to; or ours (an extension) while the peer,
        // a listener that could not know, greeted with plain `aemp`.
        let ours = &self.cfg.protocol;
        let agreed = g.protocol == *ours
            || (ours == PROTOCOL && self.cfg.extensions.contains(&g.protocol))
            || (ours != PROTOCOL && g.protocol == PROTOCOL);
        if !agreed {
            return Err(Error::UnsupportedProtocol {
                peer: g.protocol,
                ours: ours.clone(),
            });
        }
        let plain_aemp = g.protocol == PROTOCOL && ours == PROTOCOL;
        // An exact copy of our line 1 may be an echo; line 2 tells.
        let maybe_echo = line == self.own1.as_bytes();
        // Only the message protocol refuses a node talking to itself.
        if g.node_id == self.cfg.node_id && !maybe_echo && plain_aemp {
            return Err(Error::SelfConnection);
        }
        self.send_framing = g
            .framings
            .iter()
            .filter_map(|name| Framing::from_name(name))
            .find(|f| self.cfg.framings.contains(f));
        if self.send_framing.is_none() {
            return Err(Error::NoCommonFraming {
                peer: g.framings.join(","),
                ours: join(self.cfg.framings.iter().map(|f| f.name())),
            });
        }
        if !maybe_echo {
            events.push(Event::PeerGreeting {
                node_id: g.node_id.clone(),
                greeting: g.clone(),
            });
        }
        self.peer1 = line;
        self.peer = Some(g);
        self.state = State::Line2;
        Ok(())
    }

    fn on_line2(&mut self, line: Vec<u8>, events: &mut Vec<Event>) -> Result<()> {
        if self.peer1 == self.own1.as_bytes() {
            return Err(if line == self.own2.as_bytes() {
                Error::EchoAttack
            } else {
                Error::SelfConnection
            });
        }
        self.peer2 = line;
        let peer_tls = self.peer.as_ref().is_some_and(Greeting::offers_tls);
        self.tls = self.cfg.have_cert && peer_tls;
        if self.tls {
            if self.peer2 == self.own2.as_bytes() {
                return Err(Error::SameNonce {
                    peer: self.peer_id(),
                });
            }
            events.push(Event::StartTls {
                client: self.own2.as_bytes() < self.peer2.as_slice(),
                ciphertext: std::mem::take(&mut self.inbuf),
            });
            self.state = State::AwaitTls;
        } else {
            self.send_auth()?;
            self.state = State::Auth;
        }
        Ok(())
    }

    fn send_auth(&mut self) -> Result<()> {
        let peer_auths = self
            .peer
            .as_ref()
            .map(|g| g.auths.as_slice())
            .unwrap_or(&[]);
        let secret = self.cfg.secret.as_deref();
        let Some(method) =
            auth::choose_method(peer_auths, &self.cfg.auth_offer, self.tls, secret.is_some())
        else {
            if !self.tls && secret.is_none() {
                return Err(Error::NoAuthPossible);
            }
            return Err(Error::NoCommonAuth {
                peer: self.peer_id(),
                accepts: peer_auths.join(","),
                offer: join(self.cfg.auth_offer.iter().map(|m| m.name())),
            });
        };
        let m = auth::auth_message(
            self.own1.as_bytes(),
            self.own2.as_bytes(),
            &self.peer1,
            &self.peer2,
        );
        let token = auth::make_token(method, secret, &m).ok_or(Error::NoAuthPossible)?;
        let framing = self
            .send_framing
            .ok_or(Error::Misuse("auth before greeting"))?;
        let line = AuthLine {
            method: method.name().to_owned(),
            token,
            framing: framing.name().to_owned(),
        };
        self.out.extend_from_slice(line.encode().as_bytes());
        Ok(())
    }

    fn on_auth(&mut self, line: &[u8], events: &mut Vec<Event>) -> Result<()> {
        let peer = self.peer_id();
        let failure = |reason: String| Error::AuthFailure {
            peer: peer.clone(),
            reason,
        };
        let text =
            std::str::from_utf8(line).map_err(|_| failure("auth line is not UTF-8".into()))?;
        let al = AuthLine::parse(text).ok_or_else(|| failure("malformed auth line".into()))?;
        let method = al
            .method
            .parse::<AuthMethod>()
            .ok()
            .filter(|m| self.cfg.auth_accept.contains(m))
            .ok_or_else(|| failure(format!("auth method {:?} not accepted", al.method)))?;
        let m = auth::auth_message(
            &self.peer1,
            &self.peer2,
            self.own1.as_bytes(),
            self.own2.as_bytes(),
        );
        let trust = auth::verify_token(method, &al.token, self.cfg.secret.as_deref(), self.tls, &m)
            .map_err(|reason| failure(format!("{method}: {reason}")))?;
        let recv_framing = Framing::from_name(&al.framing)
            .filter(|f| self.cfg.framings.contains(f))
            .ok_or_else(|| Error::UnsupportedFraming {
                peer: peer.clone(),
                framing: al.framing.clone(),
            })?;
        let (Some(peer_greeting), Some(send_framing)) = (self.peer.clone(), self.send_framing)
        else {
            return Err(Error::Misuse("auth before greeting"));
        };
        events.push(Event::Established(Box::new(Established {
            peer_node_id: peer,
            peer_greeting,
            send_framing,
            recv_framing,
            peer_auth: method,
            trusted: trust == Trust::Trusted,
            tls: self.tls,
            leftover: std::mem::take(&mut self.inbuf),
        })));
        self.state = State::Done;
        Ok(())
    }

    fn peer_id(&self) -> String {
        self.peer
            .as_ref()
            .map(|g| g.node_id.clone())
            .unwrap_or_default()
    }
}

fn join<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(",")
}
