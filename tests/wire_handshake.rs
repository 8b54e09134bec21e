//! Two handshake state machines back to back in memory (no sockets, no TLS).

use std::time::{Duration, Instant};

use aemp::transport::auth::AuthMethod;
use aemp::transport::framing::{encode, Decoder, Framing, Packet};
use aemp::transport::handshake::{Config, Established, Event, Handshake};
use aemp::transport::Error;
use serde_json::json;

/// One end: its machine plus what the test driver observed.
struct Side {
    hs: Handshake,
    events: Vec<Event>,
    err: Option<Error>,
    /// Bytes to send next (handshake output, then packets).
    wire: Vec<u8>,
    /// Packets this side sends as soon as it is established.
    to_send: Vec<Packet>,
    /// Data-phase bytes received (leftover first).
    data: Vec<u8>,
    tls_client: Option<bool>,
}

impl Side {
    fn new(cfg: Config, nonce: &str) -> Side {
        let mut hs = Handshake::with_nonce(cfg, Instant::now(), nonce.to_owned());
        let wire = hs.take_output();
        Side {
            hs,
            events: vec![],
            err: None,
            wire,
            to_send: vec![],
            data: vec![],
            tls_client: None,
        }
    }

    fn established(&self) -> Option<&Established> {
        self.events.iter().find_map(|e| match e {
            Event::Established(est) => Some(&**est),
            _ => None,
        })
    }

    fn receive(&mut self, bytes: &[u8]) {
        if self.err.is_some() {
            return;
        }
        if self.hs.is_done() {
            self.data.extend_from_slice(bytes);
            return;
        }
        match self.hs.feed(bytes) {
            Ok(events) => {
                for ev in events {
                    self.handle(ev);
                }
            }
            Err(e) => self.err = Some(e),
        }
        self.wire.extend(self.hs.take_output());
    }

    fn handle(&mut self, ev: Event) {
        match &ev {
            Event::StartTls { client, ciphertext } => {
                // "TLS" here is the identity: what the peer sent after its
                // nonce is already plaintext.
                self.tls_client = Some(*client);
                let pending = ciphertext.clone();
                self.events.push(ev);
                if let Err(e) = self.hs.tls_established() {
                    self.err = Some(e);
                    return;
                }
                self.wire.extend(self.hs.take_output());
                self.receive(&pending);
                return;
            }
            Event::Established(est) => {
                self.data.extend_from_slice(&est.leftover);
                self.wire.extend(self.hs.take_output());
                for p in std::mem::take(&mut self.to_send) {
                    encode(est.send_framing, &p, &mut self.wire).unwrap();
                }
            }
            Event::PeerGreeting { .. } => {}
        }
        self.events.push(ev);
    }

    fn packets(&self) -> Vec<Packet> {
        let Some(est) = self.established() else {
            return vec![];
        };
        let mut d = Decoder::new(est.recv_framing);
        d.feed(&self.data);
        let mut v = vec![];
        while let Some(p) = d.next_packet().unwrap() {
            v.push(p);
        }
        v
    }
}

/// Exchanges bytes until neither side has anything to send; `map` may
/// rewrite each transmission (e.g. LF → CRLF).
fn pump_with(a: &mut Side, b: &mut Side, map: impl Fn(Vec<u8>) -> Vec<u8>) {
    for _ in 0..20 {
        let (wa, wb) = (std::mem::take(&mut a.wire), std::mem::take(&mut b.wire));
        if wa.is_empty() && wb.is_empty() {
            return;
        }
        // Bytes written before an error were still sent.
        if !wa.is_empty() {
            b.receive(&map(wa));
        }
        if !wb.is_empty() {
            a.receive(&map(wb));
        }
    }
    panic!("handshake did not settle");
}

fn pump(a: &mut Side, b: &mut Side) {
    pump_with(a, b, |v| v)
}

fn cfg(node: &str, secret: Option<&str>) -> Config {
    let mut c = Config::new(node);
    c.secret = secret.map(|s| s.as_bytes().to_vec());
    c
}

fn pair(ca: Config, cb: Config) -> (Side, Side) {
    (Side::new(ca, "nonceA"), Side::new(cb, "nonceB"))
}

#[test]
fn same_secret_succeeds_and_packets_flow() {
    let (mut a, mut b) = pair(cfg("a", Some("geheim")), cfg("b", Some("geheim")));
    let sent = vec![
        vec![json!(""), json!("g_slave")],
        vec![json!("port"), json!({"k": [1, null]})],
    ];
    a.to_send = sent.clone();
    b.to_send = vec![vec![json!(""), json!("g_global")]];
    pump(&mut a, &mut b);
    assert_eq!(a.err, None);
    assert_eq!(b.err, None);
    let (ea, eb) = (a.established().unwrap(), b.established().unwrap());
    assert_eq!(ea.peer_node_id, "b");
    assert_eq!(eb.peer_node_id, "a");
    assert!(ea.trusted && !ea.tls);
    assert_eq!(ea.peer_auth, AuthMethod::HmacSha3_512);
    assert_eq!(
        (ea.send_framing, ea.recv_framing),
        (Framing::Cbor, Framing::Cbor)
    );
    assert_eq!(eb.peer_greeting.get("mproto"), Some("1"));
    assert_eq!(b.packets(), sent);
    assert_eq!(a.packets(), vec![vec![json!(""), json!("g_global")]]);
    assert!(matches!(&a.events[0], Event::PeerGreeting { node_id, .. } if node_id == "b"));
}

#[test]
fn wrong_secret_fails_on_both_ends_and_delivers_nothing() {
    let (mut a, mut b) = pair(cfg("a", Some("geheim")), cfg("b", Some("other")));
    a.to_send = vec![vec![json!("x")]];
    b.to_send = vec![vec![json!("y")]];
    pump(&mut a, &mut b);
    for s in [&a, &b] {
        let e = s.err.as_ref().expect("error");
        assert!(e.to_string().starts_with("authentication failure"), "{e}");
        assert!(s.established().is_none());
        assert!(s.packets().is_empty());
    }
    assert!(a.err.as_ref().unwrap().to_string().contains("from b"));
}

#[test]
fn self_connection_refused() {
    let (mut a, mut b) = pair(cfg("same", Some("s")), cfg("same", Some("s")));
    pump(&mut a, &mut b);
    assert_eq!(a.err, Some(Error::SelfConnection));
    assert_eq!(b.err, Some(Error::SelfConnection));
    assert_eq!(
        Error::SelfConnection.to_string(),
        "refusing to talk to myself"
    );
}

#[test]
fn echo_attack_detected() {
    let mut a = Side::new(cfg("a", Some("s")), "n");
    let mine = a.wire.clone();
    a.receive(&mine);
    assert_eq!(a.err, Some(Error::EchoAttack));
    assert!(a.events.is_empty());
}

fn greeting(node: &str, version: &str, framings: &str, kv: &str) -> String {
    format!("aemp;{version};{node};tls_sha3_512,hmac_sha3_512,tls_anon,cleartext;{framings}{kv}\nNONCE\n")
}

#[test]
fn version_mismatch() {
    let mut a = Side::new(cfg("a", Some("s")), "n");
    a.receive(greeting("p", "2", "json", "").as_bytes());
    let e = a.err.unwrap();
    assert_eq!(e, Error::VersionMismatch("2".into()));
    assert_eq!(e.to_string(), "version mismatch: 2");
}

#[test]
fn unsupported_extension_protocol() {
    let mut a = Side::new(cfg("a", Some("s")), "n");
    a.receive(b"aemp-dataconn;1;p;hmac_sha3_512;json\n");
    assert!(
        matches!(a.err, Some(Error::UnsupportedProtocol { .. })),
        "{:?}",
        a.err
    );
}

#[test]
fn over_long_lines() {
    let mut a = Side::new(cfg("a", Some("s")), "n");
    a.receive(format!("{}\n", "a".repeat(4097)).as_bytes());
    assert_eq!(
        a.err.as_ref().unwrap().to_string(),
        "line too long (4097 bytes)"
    );
    // Without a line end the buffer is capped too.
    let mut a = Side::new(cfg("a", Some("s")), "n");
    a.receive("a".repeat(4000).as_bytes());
    assert_eq!(a.err, None);
    a.receive("a".repeat(1000).as_bytes());
    assert_eq!(a.err, Some(Error::LineTooLong(5000)));
    // 4096 bytes plus CRLF is allowed (then fails as a greeting, not as too long).
    let mut a = Side::new(cfg("a", Some("s")), "n");
    a.receive(format!("{}\r\n", "a".repeat(4096)).as_bytes());
    assert!(
        matches!(a.err, Some(Error::BadGreeting { .. })),
        "{:?}",
        a.err
    );
}

#[test]
fn each_direction_uses_the_receivers_preference() {
    let mut ca = cfg("a", Some("s"));
    ca.framings = vec![Framing::Json, Framing::Cbor];
    let (mut a, mut b) = pair(ca, cfg("b", Some("s")));
    a.to_send = vec![vec![json!("to-b")]];
    b.to_send = vec![vec![json!("to-a")]];
    pump(&mut a, &mut b);
    let ea = a.established().unwrap();
    assert_eq!(
        (ea.send_framing, ea.recv_framing),
        (Framing::Cbor, Framing::Json)
    );
    let eb = b.established().unwrap();
    assert_eq!(
        (eb.send_framing, eb.recv_framing),
        (Framing::Json, Framing::Cbor)
    );
    assert_eq!(a.packets(), vec![vec![json!("to-a")]]);
    assert_eq!(b.packets(), vec![vec![json!("to-b")]]);
}

#[test]
fn json_only_with_cbor_preferring_both_ways() {
    for json_first in [true, false] {
        let mut cj = cfg("j", Some("s"));
        cj.framings = vec![Framing::Json];
        let cc = cfg("c", Some("s"));
        let (mut j, mut c) = if json_first {
            pair(cj, cc)
        } else {
            let (c, j) = pair(cc, cj);
            (j, c)
        };
        j.to_send = vec![vec![json!(1)]];
        c.to_send = vec![vec![json!(2)]];
        pump(&mut j, &mut c);
        let ej = j.established().unwrap();
        assert_eq!(
            (ej.send_framing, ej.recv_framing),
            (Framing::Json, Framing::Json)
        );
        assert_eq!(j.packets(), vec![vec![json!(2)]]);
        assert_eq!(c.packets(), vec![vec![json!(1)]]);
    }
}

#[test]
fn no_common_framing() {
    let mut ca = cfg("a", Some("s"));
    ca.framings = vec![Framing::Json];
    let mut cb = cfg("b", Some("s"));
    cb.framings = vec![Framing::Cbor];
    let (mut a, mut b) = pair(ca, cb);
    pump(&mut a, &mut b);
    assert_eq!(
        a.err.unwrap().to_string(),
        "no common framing: peer offers [cbor], we support [json]"
    );
    // A Perl peer offering storable only:
    let mut a = Side::new(cfg("a", Some("s")), "n");
    a.receive(greeting("p", "1", "storable", "").as_bytes());
    assert_eq!(
        a.err.unwrap().to_string(),
        "no common framing: peer offers [storable], we support [cbor,json]"
    );
}

#[test]
fn no_secret_and_no_cert() {
    let (mut a, mut b) = pair(cfg("a", None), cfg("b", None));
    pump(&mut a, &mut b);
    assert_eq!(a.err, Some(Error::NoAuthPossible));
    assert_eq!(
        Error::NoAuthPossible.to_string(),
        "unable to handshake TLS and no shared secret configured"
    );
    // Only one side has a certificate: no TLS, so the secret is needed.
    let mut ca = cfg("a", None);
    ca.have_cert = true;
    let (mut a, mut b) = pair(ca, cfg("b", None));
    pump(&mut a, &mut b);
    assert_eq!(a.err, Some(Error::NoAuthPossible));
    assert!(a.tls_client.is_none() && b.tls_client.is_none());
}

#[test]
fn crlf_line_endings() {
    let (mut a, mut b) = pair(cfg("a", Some("s")), cfg("b", Some("s")));
    pump_with(&mut a, &mut b, |v| {
        String::from_utf8(v)
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes()
    });
    assert!(a.hs.is_done() && b.hs.is_done(), "{:?} {:?}", a.err, b.err);
}

#[test]
fn partial_lines_are_buffered() {
    let (mut a, mut b) = pair(cfg("a", Some("s")), cfg("b", Some("s")));
    for byte in std::mem::take(&mut a.wire) {
        b.receive(&[byte]);
    }
    pump(&mut a, &mut b);
    assert!(a.hs.is_done() && b.hs.is_done(), "{:?} {:?}", a.err, b.err);
}

#[test]
fn peer_stopping_mid_handshake() {
    let start = Instant::now();
    let mut c = cfg("a", Some("s"));
    c.timeout = Duration::from_secs(5);
    let mut hs = Handshake::with_nonce(c, start, "n".into());
    let events = hs.feed(b"aemp;1;p;hmac_sha3_512;json\nNON").unwrap();
    assert!(matches!(&events[..], [Event::PeerGreeting { .. }]));
    assert!(!hs.is_done());
    assert_eq!(hs.deadline(), start + Duration::from_secs(5));
    assert_eq!(hs.check_timeout(start + Duration::from_secs(4)), Ok(()));
    assert_eq!(
        hs.check_timeout(start + Duration::from_secs(5)),
        Err(Error::Timeout)
    );
    assert_eq!(hs.feed(b"CE\n"), Err(Error::Timeout));
    let mut hs = Handshake::with_nonce(cfg("a", Some("s")), start, "n".into());
    assert_eq!(hs.eof(), Error::Eof);
    assert_eq!(hs.error(), Some(&Error::Eof));
}

fn tls_cfg(node: &str) -> Config {
    let mut c = cfg(node, None);
    c.have_cert = true;
    c
}

#[test]
fn tls_roles_by_nonce_and_tls_auth() {
    for (na, nb, a_client) in [
        ("AAAA", "BBBB", true),
        ("b", "a", false),
        ("abc", "abcd", true),
    ] {
        let mut a = Side::new(tls_cfg("a"), na);
        let mut b = Side::new(tls_cfg("b"), nb);
        a.to_send = vec![vec![json!("hi")]];
        pump(&mut a, &mut b);
        assert_eq!(a.tls_client, Some(a_client), "{na} vs {nb}");
        assert_eq!(b.tls_client, Some(!a_client));
        let eb = b.established().unwrap_or_else(|| panic!("{:?}", b.err));
        assert!(eb.tls && eb.trusted);
        assert_eq!(eb.peer_auth, AuthMethod::TlsSha3_512);
        assert_eq!(b.packets(), vec![vec![json!("hi")]]);
    }
}

#[test]
fn tls_start_hands_over_following_bytes() {
    let mut hs = Handshake::with_nonce(tls_cfg("a"), Instant::now(), "zzz".into());
    let events = hs.feed(
        greeting("p", "1", "json", ";tls=1.0")
            .replace("NONCE", "aaa")
            .as_bytes(),
    );
    let events = events.unwrap();
    assert!(
        matches!(events.last(), Some(Event::StartTls { client: false, ciphertext }) if ciphertext.is_empty())
    );
    let mut hs = Handshake::with_nonce(tls_cfg("a"), Instant::now(), "aaa".into());
    let mut input = greeting("p", "1", "json", ";tls=1")
        .replace("NONCE", "zzz")
        .into_bytes();
    input.extend_from_slice(b"\x16\x03\x01");
    let events = hs.feed(&input).unwrap();
    assert_eq!(
        events.last(),
        Some(&Event::StartTls {
            client: true,
            ciphertext: b"\x16\x03\x01".to_vec()
        })
    );
    hs.take_output();
    assert!(matches!(hs.feed(b"x"), Err(Error::Misuse(_))));
    hs.tls_established().unwrap();
    assert!(String::from_utf8(hs.take_output())
        .unwrap()
        .starts_with("tls_sha3_512;"));
}

#[test]
fn tls_anon_is_accepted_but_untrusted() {
    let mut hs = Handshake::with_nonce(tls_cfg("a"), Instant::now(), "aaa".into());
    hs.feed(
        greeting("p", "1", "json", ";tls=1.0")
            .replace("NONCE", "zzz")
            .as_bytes(),
    )
    .unwrap();
    hs.tls_established().unwrap();
    let events = hs.feed(b"tls_anon;;json\n[\"\"]").unwrap();
    let Some(Event::Established(est)) = events.last() else {
        panic!("{events:?}")
    };
    assert!(!est.trusted && est.tls);
    assert_eq!(est.leftover, b"[\"\"]");
    // Without TLS, tls_anon is an authentication failure.
    let mut hs = Handshake::with_nonce(cfg("a", Some("s")), Instant::now(), "aaa".into());
    let mut input = greeting("p", "1", "json", "").into_bytes();
    input.extend_from_slice(b"tls_anon;;json\n");
    let e = hs.feed(&input).unwrap_err();
    assert!(
        e.to_string().starts_with("authentication failure from p"),
        "{e}"
    );
}

#[test]
fn cleartext_is_accepted_and_never_sent() {
    let mut hs = Handshake::with_nonce(cfg("a", Some("geheim")), Instant::now(), "n".into());
    let mut input = greeting("p", "1", "json", "").into_bytes();
    input.extend_from_slice(b"cleartext;67656865696d;json\n");
    let events = hs.feed(&input).unwrap();
    assert!(hs.is_done(), "{events:?}");
    let out = String::from_utf8(hs.take_output()).unwrap();
    assert!(out.contains("\nhmac_sha3_512;"), "{out}");
}

#[test]
fn peer_framing_must_be_one_we_offered() {
    let mut c = cfg("a", None);
    c.auth_accept = vec![AuthMethod::Cleartext];
    c.secret = Some(b"k".to_vec());
    c.framings = vec![Framing::Json];
    let mut hs = Handshake::with_nonce(c, Instant::now(), "n".into());
    let mut input = greeting("p", "1", "json", "").into_bytes();
    input.extend_from_slice(b"cleartext;6b;cbor\n");
    let e = hs.feed(&input).unwrap_err();
    assert!(matches!(e, Error::UnsupportedFraming { .. }), "{e}");
}

#[test]
fn greeting_values_are_escaped_and_unknown_keys_kept_harmlessly() {
    let mut ca = cfg("a", Some("s"));
    ca.extra.push(("peeraddr".into(), "we;ird%addr".into()));
    let (mut a, mut b) = pair(ca, cfg("b", Some("s")));
    assert!(String::from_utf8(a.wire.clone())
        .unwrap()
        .contains("peeraddr=we%3bird%25addr"));
    pump(&mut a, &mut b);
    let eb = b.established().unwrap();
    assert_eq!(eb.peer_greeting.get("peeraddr"), Some("we;ird%addr"));
    let mut a = Side::new(cfg("a", Some("s")), "n");
    a.receive(greeting("p", "1", "json", ";future=thing;flag").as_bytes());
    assert_eq!(a.err, None);
}

#[test]
fn debug_output_hides_the_secret() {
    let hs = Handshake::new(cfg("a", Some("topsecret")), Instant::now());
    let dbg = format!("{hs:?}");
    assert!(
        !dbg.contains("topsecret") && dbg.contains("<hidden>"),
        "{dbg}"
    );
}

#[test]
fn any_nonce_content_is_accepted() {
    for nonce in [&b""[..], b"\xff\x00 binary;;", b"x"] {
        let mut hs = Handshake::with_nonce(cfg("a", Some("geheim")), Instant::now(), "n".into());
        let mut input = b"aemp;1;p;hmac_sha3_512;json\n".to_vec();
        input.extend_from_slice(nonce);
        input.extend_from_slice(b"\ncleartext;67656865696d;json\n");
        hs.feed(&input).unwrap();
        assert!(hs.is_done());
    }
}

#[test]
fn auth_sent_once_the_peer_nonce_arrived() {
    let mut a = Handshake::new(cfg("a", Some("s")), Instant::now());
    let mut b = Handshake::new(cfg("b", Some("s")), Instant::now());
    assert!(!a.auth_sent());
    let out_b = b.take_output();
    let text = String::from_utf8(out_b.clone()).unwrap();
    let line1_len = text.find('\n').unwrap() + 1;
    // Line 1 alone: the driver may still drop the handshake.
    a.feed(&out_b[..line1_len]).unwrap();
    assert!(!a.auth_sent());
    a.feed(&out_b[line1_len..]).unwrap();
    assert!(a.auth_sent());
}

/// A data connection: the dialer greets with `aemp-dataconn`, the listener
/// (which greeted with `aemp`) switches; both complete, even between two
/// ends with the same node ID (the self-connection check is the message
/// protocol's), and what follows the auth lines is raw bytes.
#[test]
fn dataconn_switches_a_listener_greeting_aemp() {
    let mut dialer = cfg("n", Some("geheim"));
    dialer.protocol = "aemp-dataconn".into();
    dialer.extra = vec![("dataconn_id".into(), "1@n".into())];
    let mut listener = cfg("n", Some("geheim"));
    listener.extensions = vec!["aemp-dataconn".into()];
    let (mut a, mut b) = pair(dialer, listener);
    pump(&mut a, &mut b);
    assert!(
        a.err.is_none() && b.err.is_none(),
        "{:?} {:?}",
        a.err,
        b.err
    );
    let est = b.established().expect("listener established");
    assert_eq!(est.peer_greeting.protocol, "aemp-dataconn");
    assert_eq!(est.peer_greeting.get("dataconn_id"), Some("1@n"));
    assert_eq!(a.established().unwrap().peer_greeting.protocol, "aemp");
    // A wrong secret still fails.
    let mut dialer = cfg("x", Some("other"));
    dialer.protocol = "aemp-dataconn".into();
    let mut listener = cfg("y", Some("geheim"));
    listener.extensions = vec!["aemp-dataconn".into()];
    let (mut a, mut b) = pair(dialer, listener);
    pump(&mut a, &mut b);
    assert!(
        matches!(a.err, Some(Error::AuthFailure { .. })),
        "{:?}",
        a.err
    );
    assert!(
        matches!(b.err, Some(Error::AuthFailure { .. })),
        "{:?}",
        b.err
    );
}
