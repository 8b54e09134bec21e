//! [`Config`]: what a networked node is (ID, binds, secret, framings,
//! timeouts, known addresses), node-ID expansion and bind parsing.

use crate::error::{Error, Result};
use crate::id::NameGen;
use crate::rcfile;
use crate::transport::auth::AuthMethod;
use crate::transport::Framing;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// The configuration of a networked node, built in code.
///
/// Every field has a default ([`Config::default`]); the setters consume
/// and return the config, so a configuration reads as one expression:
///
/// ```
/// use std::time::Duration;
/// let cfg = aemp::Config::new("server/%u")
///     .bind("127.0.0.1:0")
///     .secret("geheim")
///     .monitor_timeout(Duration::from_secs(5));
/// assert!(cfg.expanded_node_id().unwrap().as_str().starts_with("server/"));
/// ```
#[derive(Clone)]
pub struct Config {
    /// The node ID pattern: `%n` becomes the host name, `%u` a random
    /// text, and a trailing `/` gets a random text appended. Default
    /// `anon/`.
    pub node_id: String,
    /// Listen addresses `host:port`; host `*` means all local addresses,
    /// port `*` or `0` a port chosen by the system. Default: none (the
    /// node only connects out).
    pub binds: Vec<String>,
    /// The shared secret authenticating nodes to each other.
    pub secret: Option<String>,
    /// PEM text with a private key and a certificate (and optionally CA
    /// certificates). When both nodes have one, the connection runs over
    /// TLS and each verifies the other against the certificates in this
    /// PEM (so nodes share one self-signed certificate, or one CA); then
    /// no secret is needed. A cert on one side only falls back to hmac.
    pub cert: Option<String>,
    /// How long connection attempts to a node go on (after its monitors
    /// fired, see `connect_interval`, so that the node is connected when
    /// it comes up), how long a handshake may take, and the cap of the
    /// seeds' retry back-off. Default 30 s.
    pub monitor_timeout: Duration,
    /// The delay between connection attempts to a node's next address,
    /// and the connect timeout: when no connection to a node is up this
    /// long after the attempts began (and no handshake with it is under
    /// way), every monitor of that node fires with
    /// `["transport_error", NODE, "connect timeout"]` and the messages
    /// queued for it are dropped, as in AnyEvent::MP 2.02. Default 2 s.
    pub connect_interval: Duration,
    /// Framings we accept, preferred first. Default `cbor,json`.
    pub framings: Vec<Framing>,
    /// Auth methods we send when the peer accepts them. Default
    /// `tls_sha3_512,hmac_sha3_512`.
    pub auth_offer: Vec<AuthMethod>,
    /// Auth methods we accept, preferred first. Default all four.
    pub auth_accept: Vec<AuthMethod>,
    /// Set TCP_NODELAY on connections. Default true.
    pub nodelay: bool,
    /// How long the node's threads (the network reactor, the dispatcher
    /// running callbacks, thread ports waiting in their mailbox) keep
    /// polling for work, yielding the CPU between polls, before they
    /// sleep. A reply that comes within this time is picked up without
    /// waking a sleeping thread, which roughly halves a remote round trip;
    /// the price is CPU time spent polling (a thread whose waits are
    /// longer than this stops polling until they are short again). A
    /// thread polls only while it converses: it (for the reactor: its
    /// node) sent something since its previous wait began, so an answer
    /// may be coming, or its waits are very short (a stream); a thread
    /// that only takes in a paced stream sleeps at once.
    /// Zero: sleep at once. Default 100 µs.
    pub busy_wait: Duration,
    /// The stack size, in bytes, of the threads of this node's thread
    /// ports (`None`, the default: the standard library's, 2 MiB unless
    /// `RUST_MIN_STACK` says otherwise). Only the pages a thread touches
    /// cost memory; a smaller stack lets more threads fit in the address
    /// space. A finished port thread waits (parked, up to 10 s) for the
    /// next thread port with the same stack size, which then starts
    /// without creating a thread.
    pub thread_stack_size: Option<usize>,
    /// The heartbeat tick. When nothing has arrived from a connected peer
    /// for a tick, it is probed with a node-port `time` request, which
    /// every AEMP node answers (Perl's too; a Rust node from its reactor,
    /// however long its callbacks run). When nothing has arrived for three
    /// ticks, the connection is dead: it closes, and every monitor of that
    /// node fires once with `["transport_error", NODE, "no answer for
    /// <seconds> s (heartbeat)"]`, as on any other loss. Anything that
    /// arrives counts as life, so a link busy both ways sends no probes.
    /// A stopped, hung or vanished peer is noticed within 3¼ ticks:
    /// default 4 s (within 13 s); 1 s gives 3–3¼ s. Ticks much below 1 s
    /// risk declaring a peer on a loaded machine dead. Zero: no heartbeat
    /// (as AnyEvent::MP, which relies on TCP alone).
    pub tick: Duration,
    /// Unsent bytes a connection may hold (encoded packets the socket has
    /// not taken yet). A send that would pass it fails the connection like
    /// a lost one: the buffer is freed, and the node's monitors fire with
    /// `["transport_error", NODE, "outgoing buffer over its limit (…)"]`.
    /// So a peer that stopped reading costs at most this much memory. The
    /// same bound holds for the messages queued while a connection is
    /// being made (a peer that accepts but never finishes its handshake):
    /// past it the attempt fails the same way, with `"… bytes queued while
    /// connecting, over the unsent_limit …"`.
    /// Default 128 MiB: twice the largest packet (64 MiB), far more than a
    /// burst to a reading peer ever queues (the reactor writes as fast as
    /// loopback takes it), small enough for one stalled peer not to take
    /// the host down.
    pub unsent_limit: usize,
    /// Unsent bytes of a connection above which
    /// [`Node::snd_wait`](crate::Node::snd_wait) waits. Default 1 MiB (as
    /// Erlang's `dist_buf_busy_limit`).
    pub unsent_high_water: usize,
    /// Known addresses of other nodes (node ID → `host:port` list), tried
    /// before asking the database master (discovery).
    pub addresses: HashMap<String, Vec<String>>,
    /// Seed addresses (`host:port`, resolved when the node starts): the
    /// node keeps connecting to each, picks the first connected one as its
    /// database master, and the seeds become global nodes. A node whose
    /// seeds include its own listen address is global itself.
    pub seeds: Vec<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("node_id", &self.node_id)
            .field("binds", &self.binds)
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("cert", &self.cert.as_ref().map(|_| "<pem>"))
            .field("monitor_timeout", &self.monitor_timeout)
            .field("connect_interval", &self.connect_interval)
            .field("framings", &self.framings)
            .field("nodelay", &self.nodelay)
            .field("busy_wait", &self.busy_wait)
            .field("thread_stack_size", &self.thread_stack_size)
            .field("tick", &self.tick)
            .field("unsent_limit", &self.unsent_limit)
            .field("unsent_high_water", &self.unsent_high_water)
            .field("addresses", &self.addresses)
            .field("seeds", &self.seeds)
            .finish()
    }
}

/// The typed readers of a resolved configuration's keys, for
/// [`Config::from_rc`]: a missing or `null` key is `None`; a value of the
/// wrong kind is an [`Error::Config`] naming the key.
struct RcKeys<'a>(&'a serde_json::Map<String, serde_json::Value>);

impl RcKeys<'_> {
    fn bad(key: &str, problem: &str) -> Error {
        Error::Config {
            key: key.to_string(),
            problem: problem.to_string(),
        }
    }

    fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A list of strings (a single string is a list of one).
    fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        use serde_json::Value;
        let wrong = || Self::bad(key, "expected a list of strings");
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(wrong))
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(_) => Err(wrong()),
        }
    }

    /// A string; empty is `None`.
    fn text(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok((!s.is_empty()).then(|| s.clone())),
            Some(_) => Err(Self::bad(key, "expected a string")),
        }
    }

    /// Seconds (a number, or a string holding one), not negative.
    fn secs(&self, key: &str) -> Result<Option<Duration>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|n: &f64| n.is_finite() && *n >= 0.0)
            .map(|n| Some(Duration::from_secs_f64(n)))
            .ok_or_else(|| Self::bad(key, "expected a number of seconds"))
    }

    /// Bytes (a whole number, or a string holding one).
    fn bytes(&self, key: &str) -> Result<Option<usize>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| Self::bad(key, "expected a number of bytes"))
    }
}

/// The default [`Config::tick`].
pub(crate) const DEFAULT_TICK: Duration = Duration::from_secs(4);
/// The default [`Config::unsent_limit`].
pub(crate) const DEFAULT_UNSENT_LIMIT: usize = 128 << 20;
/// The default [`Config::unsent_high_water`].
pub(crate) const DEFAULT_UNSENT_HIGH_WATER: usize = 1 << 20;

impl Default for Config {
    fn default() -> Config {
        Config {
            node_id: "anon/".into(),
            binds: Vec::new(),
            secret: None,
            cert: None,
            monitor_timeout: rcfile::MONITOR_TIMEOUT,
            connect_interval: rcfile::CONNECT_INTERVAL,
            framings: Framing::ALL.to_vec(),
            auth_offer: rcfile::AUTH_OFFER.to_vec(),
            auth_accept: AuthMethod::ALL.to_vec(),
            nodelay: rcfile::NODELAY,
            busy_wait: crate::busy::DEFAULT_BUSY_WAIT,
            thread_stack_size: None,
            tick: DEFAULT_TICK,
            unsent_limit: DEFAULT_UNSENT_LIMIT,
            unsent_high_water: DEFAULT_UNSENT_HIGH_WATER,
            addresses: HashMap::new(),
            seeds: Vec::new(),
        }
    }
}

impl Config {
    /// The defaults with the given node ID pattern.
    ///
    /// ```
    /// use aemp::Config;
    /// let cfg = Config::new("worker/%n/");
    /// assert_eq!(cfg.node_id, "worker/%n/");
    /// assert!(cfg.binds.is_empty()); // the defaults: connects out only
    /// let id = cfg.expanded_node_id().unwrap(); // "worker/<host name>/<random>"
    /// assert!(id.as_str().starts_with("worker/"));
    /// ```
    pub fn new(node_id: impl Into<String>) -> Config {
        Config {
            node_id: node_id.into(),
            ..Config::default()
        }
    }

    /// Adds a listen address (`host:port`, `*:0`, ...).
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// let node = Node::with_config(Config::new("doc-bind/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// let addr = node.listen_addrs()[0]; // port 0: the system chose one
    /// assert!(addr.ip().is_loopback() && addr.port() != 0);
    /// ```
    pub fn bind(mut self, bind: impl Into<String>) -> Config {
        self.binds.push(bind.into());
        self
    }

    /// Sets the shared secret.
    ///
    /// ```
    /// use aemp::{msg, Config, Node};
    /// use std::time::Duration;
    /// let a = Node::with_config(Config::new("doc-secret-a/").bind("127.0.0.1:0").secret("right")).unwrap();
    /// let echo = a.port_fn(|m| aemp::snd(&m.reply_port().unwrap(), msg!["ok"]));
    /// let addr = a.listen_addrs()[0].to_string();
    ///
    /// let b = Node::with_config(Config::new("doc-secret-b/").secret("right")).unwrap();
    /// b.add_address(a.id(), &addr).unwrap();
    /// assert_eq!(b.call(&echo, msg!["hi"], Duration::from_secs(10)).unwrap(), msg!["ok"]);
    ///
    /// // A node with another secret never gets through the handshake.
    /// let c = Node::with_config(
    ///     Config::new("doc-secret-c/").secret("wrong").connect_interval(Duration::from_millis(500)),
    /// ).unwrap();
    /// c.add_address(a.id(), &addr).unwrap();
    /// assert!(c.call(&echo, msg!["hi"], Duration::from_secs(10)).is_err());
    /// ```
    pub fn secret(mut self, secret: impl Into<String>) -> Config {
        self.secret = Some(secret.into());
        self
    }

    /// Sets the PEM certificate (see [`Config::cert`](Config#structfield.cert)).
    pub fn cert(mut self, pem: impl Into<String>) -> Config {
        self.cert = Some(pem.into());
        self
    }

    /// Sets `monitor_timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cfg = aemp::Config::new("w/").monitor_timeout(Duration::from_secs(5));
    /// assert_eq!(cfg.monitor_timeout, Duration::from_secs(5));
    /// ```
    pub fn monitor_timeout(mut self, t: Duration) -> Config {
        self.monitor_timeout = t;
        self
    }

    /// Sets the heartbeat [`tick`](Config::tick) (zero: none).
    ///
    /// ```
    /// use std::time::Duration;
    /// // A stopped peer is noticed within about 3 s.
    /// let cfg = aemp::Config::new("worker/").tick(Duration::from_secs(1));
    /// assert_eq!(cfg.tick, Duration::from_secs(1));
    /// ```
    pub fn tick(mut self, t: Duration) -> Config {
        self.tick = t;
        self
    }

    /// Sets [`unsent_limit`](Config::unsent_limit) (bytes).
    ///
    /// ```
    /// // Fail a connection whose peer leaves more than 16 MiB unread.
    /// let cfg = aemp::Config::new("w/").unsent_limit(16 << 20);
    /// assert_eq!(cfg.unsent_limit, 16 << 20);
    /// ```
    pub fn unsent_limit(mut self, bytes: usize) -> Config {
        self.unsent_limit = bytes;
        self
    }

    /// Sets [`unsent_high_water`](Config::unsent_high_water) (bytes).
    ///
    /// ```
    /// // snd_wait waits while more than 64 KiB are unsent to the port's node.
    /// let cfg = aemp::Config::new("w/").unsent_high_water(64 << 10);
    /// assert_eq!(cfg.unsent_high_water, 64 << 10);
    /// ```
    pub fn unsent_high_water(mut self, bytes: usize) -> Config {
        self.unsent_high_water = bytes;
        self
    }

    /// Sets `connect_interval`.
    ///
    /// ```
    /// use aemp::{msg, Config, Node, PortId};
    /// use std::time::Duration;
    /// // Nothing listens on the address: after about connect_interval the
    /// // unreachable node's monitors fire with "connect timeout".
    /// let node = Node::with_config(
    ///     Config::new("doc-ci/").secret("s").connect_interval(Duration::from_millis(300)),
    /// ).unwrap();
    /// let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    /// node.add_address(&"nobody".parse().unwrap(), &closed.to_string()).unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let port = PortId::parse("nobody#x").unwrap();
    /// node.mon(&port, move |r| tx.send(r).unwrap()).forget();
    /// node.snd(&port, msg!["hello"]);
    /// let r = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    /// assert_eq!(r.kind(), Some("transport_error"));
    /// ```
    pub fn connect_interval(mut self, t: Duration) -> Config {
        self.connect_interval = t;
        self
    }

    /// Sets the accepted framings, preferred first.
    ///
    /// ```
    /// use aemp::{transport::Framing, Config};
    /// let cfg = Config::new("w/").framings(&[Framing::Json]); // JSON only
    /// assert_eq!(cfg.framings, [Framing::Json]);
    /// ```
    pub fn framings(mut self, framings: &[Framing]) -> Config {
        self.framings = framings.to_vec();
        self
    }

    /// Sets TCP_NODELAY.
    ///
    /// ```
    /// let cfg = aemp::Config::new("bulk/").nodelay(false); // let the kernel coalesce small writes
    /// assert!(!cfg.nodelay);
    /// ```
    pub fn nodelay(mut self, on: bool) -> Config {
        self.nodelay = on;
        self
    }

    /// Sets `thread_stack_size` (see
    /// [`Config::thread_stack_size`](Config#structfield.thread_stack_size)).
    ///
    /// ```
    /// let cfg = aemp::Config::new("small-stacks/").secret("s").thread_stack_size(256 * 1024);
    /// let node = aemp::Node::with_config(cfg).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// node.port_thread(move |_mb| tx.send("ran on a 256 KiB stack").unwrap());
    /// assert_eq!(rx.recv().unwrap(), "ran on a 256 KiB stack");
    /// ```
    pub fn thread_stack_size(mut self, bytes: usize) -> Config {
        self.thread_stack_size = Some(bytes);
        self
    }

    /// Sets `busy_wait` (see [`Config::busy_wait`](Config#structfield.busy_wait)).
    ///
    /// ```
    /// use std::time::Duration;
    /// // No polling: threads sleep at once (less CPU, slower round trips).
    /// let cfg = aemp::Config::new("quiet/").busy_wait(Duration::ZERO);
    /// assert_eq!(cfg.busy_wait, Duration::ZERO);
    /// ```
    pub fn busy_wait(mut self, t: Duration) -> Config {
        self.busy_wait = t;
        self
    }

    /// Adds a known address of `node`.
    ///
    /// ```
    /// use aemp::{msg, Config, Node};
    /// use std::time::Duration;
    /// let server = Node::with_config(Config::new("doc-addr-server").bind("127.0.0.1:0").secret("s")).unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let inbox = server.port_fn(move |m| tx.send(m).unwrap());
    /// let addr = server.listen_addrs()[0].to_string();
    /// // The client knows where "doc-addr-server" listens from its configuration.
    /// let client = Node::with_config(
    ///     Config::new("doc-addr-client/").secret("s").address("doc-addr-server", addr),
    /// ).unwrap();
    /// client.snd(&inbox, msg!["hello"]);
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), msg!["hello"]);
    /// ```
    pub fn address(mut self, node: impl Into<String>, addr: impl Into<String>) -> Config {
        self.addresses
            .entry(node.into())
            .or_default()
            .push(addr.into());
        self
    }

    /// Adds seed addresses (`host:port` each).
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// // A node whose own address is among its seeds is a global node.
    /// let seed = Node::with_config(Config::new("doc-seeds-seed/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// let at = seed.listen_addrs()[0].to_string();
    /// seed.add_seed(&at).unwrap();
    /// // Another node joins the network through it and uses the database.
    /// let node = Node::with_config(Config::new("doc-seeds-node/").secret("s").seeds([at])).unwrap();
    /// let _g = node.db_set("doc", "k", 1).unwrap();
    /// let keys = node.db_keys_wait("doc", Duration::from_secs(10)).unwrap(); // asks the seed
    /// assert_eq!(keys, ["k"]);
    /// ```
    pub fn seeds<S: Into<String>>(mut self, seeds: impl IntoIterator<Item = S>) -> Config {
        self.seeds.extend(seeds.into_iter().map(Into::into));
        self
    }

    /// The network settings of a resolved configuration (rc file,
    /// profile and arguments, see [`rcfile::resolve`](crate::rcfile::resolve)):
    /// its node ID and the keys `binds`, `secret`, `cert`,
    /// `monitor_timeout`, `connect_interval`, `tick`, `busy_wait` (seconds,
    /// e.g. `0.0001`), `unsent_limit`, `unsent_high_water` and
    /// `thread_stack_size` (bytes),
    /// `framing_format`, `auth_offer`, `auth_accept`, `seeds` and
    /// `nodelay`. Framings and auth
    /// methods aemp does not know (Perl's `storable`) are skipped; a key
    /// with a value of the wrong type is an [`Error::Config`] naming it.
    ///
    /// ```
    /// let rc = aemp::rcfile::RcFile::from_json(
    ///     r#"{"secret": "s", "profile": {"seed": {"nodeid": "seed", "binds": ["127.0.0.1:0"]}}}"#,
    /// ).unwrap();
    /// let resolved = aemp::rcfile::resolve(&rc, Some("seed"), &Default::default(), false, false).unwrap();
    /// let cfg = aemp::Config::from_rc(&resolved).unwrap();
    /// assert_eq!(cfg.node_id, "seed");
    /// assert_eq!(cfg.binds, ["127.0.0.1:0"]);
    /// assert_eq!(cfg.secret.as_deref(), Some("s"));
    /// ```
    pub fn from_rc(resolved: &crate::rcfile::Resolved) -> Result<Config> {
        let rc = RcKeys(&resolved.config);
        let mut cfg = Config::new(resolved.node_id.node_id.as_str());
        if let Some(b) = rc.strings("binds")? {
            cfg.binds = b;
        }
        cfg.secret = rc.text("secret")?;
        cfg.cert = rc.text("cert")?;
        let times = [
            ("monitor_timeout", &mut cfg.monitor_timeout),
            ("connect_interval", &mut cfg.connect_interval),
            ("busy_wait", &mut cfg.busy_wait),
            ("tick", &mut cfg.tick),
        ];
        for (key, field) in times {
            if let Some(t) = rc.secs(key)? {
                *field = t;
            }
        }
        let sizes = [
            ("unsent_limit", &mut cfg.unsent_limit),
            ("unsent_high_water", &mut cfg.unsent_high_water),
        ];
        for (key, field) in sizes {
            if let Some(n) = rc.bytes(key)? {
                *field = n;
            }
        }
        if let Some(n) = rc.bytes("thread_stack_size")? {
            cfg.thread_stack_size = Some(n);
        }
        if let Some(f) = rc.strings("framing_format")? {
            cfg.framings = f.iter().filter_map(|n| Framing::from_name(n)).collect();
        }
        let auths = |names: Vec<String>| -> Vec<AuthMethod> {
            names
                .iter()
                .filter_map(|n| AuthMethod::ALL.into_iter().find(|m| m.name() == n))
                .collect()
        };
        if let Some(a) = rc.strings("auth_offer")? {
            cfg.auth_offer = auths(a);
        }
        if let Some(a) = rc.strings("auth_accept")? {
            cfg.auth_accept = auths(a);
        }
        if let Some(s) = rc.strings("seeds")? {
            cfg.seeds = s;
        }
        if let Some(v) = resolved.config.get("nodelay") {
            cfg.nodelay = crate::rcfile::truthy(v);
        }
        Ok(cfg)
    }

    /// Fails with [`Error::Config`] naming the key when this configuration
    /// could never let the node talk to another: neither a secret nor a
    /// certificate (no way to authenticate), no auth method to offer or
    /// to accept, no framing. [`Node::with_config`](crate::Node::with_config)
    /// checks it first.
    ///
    /// ```
    /// let err = aemp::Config::new("lonely/%u").check().unwrap_err();
    /// assert!(err.to_string().contains("neither a secret nor a certificate"));
    /// assert!(aemp::Config::new("ok/%u").secret("s").check().is_ok());
    /// ```
    pub fn check(&self) -> Result<()> {
        let bad = |key: &str, problem: &str| {
            Err(Error::Config {
                key: key.to_string(),
                problem: problem.to_string(),
            })
        };
        if self.secret.is_none() && self.cert.is_none() {
            return bad(
                "secret",
                "neither a secret nor a certificate is configured, so this node could never \
                 authenticate to another (set Config::secret or Config::cert; in the \
                 configuration file: aemp setsecret or aemp gensecret)",
            );
        }
        if self.auth_offer.is_empty() {
            return bad(
                "auth_offer",
                "no auth method to offer: no peer could accept us",
            );
        }
        if self.auth_accept.is_empty() {
            return bad(
                "auth_accept",
                "no auth method accepted: no peer could connect",
            );
        }
        if self.framings.is_empty() {
            return bad("framing_format", "no framing (json, cbor) to speak");
        }
        Ok(())
    }

    /// The node ID with `%n` (the host name), `%u` (random text) and a
    /// trailing `/` (random text appended) expanded, as
    /// [`rcfile::expand_node_id`](crate::rcfile::expand_node_id) does,
    /// except that the random text is fresh for each call, so several
    /// nodes of one process built from one pattern get distinct IDs.
    ///
    /// ```
    /// let cfg = aemp::Config::new("job/%u");
    /// let (a, b) = (cfg.expanded_node_id().unwrap(), cfg.expanded_node_id().unwrap());
    /// assert!(a.as_str().starts_with("job/") && a.as_str().len() > "job/".len());
    /// assert_ne!(a, b); // fresh random text each time
    /// assert_eq!(aemp::Config::new("fixed").expanded_node_id().unwrap().as_str(), "fixed");
    /// ```
    pub fn expanded_node_id(&self) -> Result<crate::NodeId> {
        let unique = NameGen::random_text(10);
        crate::rcfile::expand_node_id_with(&self.node_id, &crate::rcfile::hostname(), &unique)
            .map(|e| e.node_id)
    }
}

/// Parses a bind `host:port` (`*` host: all addresses; `*` or `0` port:
/// dynamic) into socket addresses.
pub(crate) fn parse_bind(bind: &str) -> Result<Vec<SocketAddr>> {
    let bad = |problem: String| Error::BadBind {
        bind: bind.to_string(),
        problem,
    };
    // A bare host (e.g. the rc file's default `*`) gets a dynamic port.
    let (host, port) = match bind.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, p),
        _ => (bind, "*"),
    };
    let port: u16 = match port {
        "*" => 0,
        p => p
            .parse()
            .map_err(|_| bad(format!("bad port {p:?} (a number, or * for any)")))?,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host == "*" || host.is_empty() {
        return Ok(vec![SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
        )]);
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(format!("cannot resolve host {host:?}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(bad(format!("host {host:?} has no addresses")));
    }
    Ok(addrs)
}

/// Resolves a peer address `host:port`.
pub(crate) fn parse_addr(addr: &str) -> Result<Vec<SocketAddr>> {
    let bad = |problem: String| Error::BadAddress {
        addr: addr.to_string(),
        problem,
    };
    if !addr.contains(':') {
        return Err(bad("expected host:port".into()));
    }
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(bad("no addresses".into()));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        let expand = |p: &str| Config::new(p).expanded_node_id().unwrap().to_string();
        assert_eq!(expand("plain"), "plain");
        let a = expand("anon/");
        assert!(a.starts_with("anon/") && a.len() == 15, "{a}");
        let u = expand("x-%u-y");
        assert!(
            u.starts_with("x-") && u.ends_with("-y") && u.len() == 14,
            "{u}"
        );
        assert_ne!(expand("x-%u"), expand("x-%u"), "fresh for each node");
        assert!(!expand("%n").contains('%'));
    }

    #[test]
    fn binds() {
        assert_eq!(parse_bind("*:*").unwrap()[0].port(), 0);
        assert_eq!(
            parse_bind("127.0.0.1:4040").unwrap()[0],
            "127.0.0.1:4040".parse().unwrap()
        );
        assert_eq!(parse_bind("*").unwrap()[0].port(), 0);
        assert!(parse_bind("no-such-host.invalid").is_err());
        assert!(parse_bind("127.0.0.1:notaport").is_err());
        assert!(parse_addr("127.0.0.1").is_err());
    }
}
