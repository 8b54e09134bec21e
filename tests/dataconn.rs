//! Data connections between two Rust nodes in two processes: both
//! directions, with and without TLS, a node without listeners (connect
//! back), a refused one (wrong secret), a time-out, a bulk transfer with
//! messages still flowing, and the own node (a socket pair).
//!
//! The child node is this test binary re-run with `AEMP_DC_CHILD` set and
//! `--ignored --exact child_node` (ignored, so a normal run never takes it
//! for a test). `AEMP_DC_CERT`: a PEM file (TLS); `AEMP_DC_DIAL`:
//! `<node>=<addr>` of the parent, for a child without listeners that
//! connects to it.

#[path = "support/cert.rs"]
mod cert;
use cert::self_signed;
#[path = "support/wait.rs"]
mod wait;
use wait::{eventually, recv, LIMIT};

use aemp::{msg, Config, DataConn, Message, Node, NodeId, PortId};
use crossbeam_channel::Receiver;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn config(tag: &str, listen: bool, cert: Option<&str>) -> Config {
    let mut c = Config::new(format!("{tag}/%u"))
        .secret("s")
        .monitor_timeout(Duration::from_secs(5))
        .connect_interval(Duration::from_millis(500));
    if listen {
        c = c.bind("127.0.0.1:0");
    }
    if let Some(pem) = cert {
        c = c.cert(pem);
    }
    c
}

fn start(c: Config) -> Node {
    let _ = env_logger::builder().is_test(true).try_init();
    let n = Node::with_config(c).unwrap();
    n.register_dataconn("p::upper", |args, mut conn| {
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        let answer = format!("{} {}", text.to_uppercase(), json(&args));
        conn.write_all(answer.as_bytes()).unwrap();
    })
    .unwrap();
    n
}

fn json(m: &Message) -> String {
    serde_json::to_string(m).unwrap()
}

/// The child node process; killed and reaped on drop.
struct ChildNode {
    child: Child,
    node: NodeId,
    addr: Option<String>,
    ctl: PortId,
    _cert: Option<tempfile::NamedTempFile>,
}

impl ChildNode {
    /// `cert`: PEM for TLS; `dial`: the parent (a child without
    /// listeners that connects to it).
    fn start(cert: Option<&str>, dial: Option<&Node>) -> ChildNode {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--ignored",
            "--exact",
            "child_node",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AEMP_DC_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        let file = cert.map(|pem| {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            f.write_all(pem.as_bytes()).unwrap();
            cmd.env("AEMP_DC_CERT", f.path());
            f
        });
        if let Some(p) = dial {
            cmd.env("AEMP_DC_DIAL", format!("{}={}", p.id(), addr(p)));
        }
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if let Some(at) = line.find("READY ") {
                    let _ = tx.send(line[at + 6..].to_string());
                }
            }
        });
        let mut c = ChildNode {
            child,
            node: "none".parse().unwrap(),
            addr: None,
            ctl: "none#x".parse().unwrap(),
            _cert: file,
        };
        let ready = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("child node did not start");
        let parts: Vec<&str> = ready.split(' ').collect();
        c.node = parts[0].parse().unwrap();
        c.addr = (parts[1] != "-").then(|| parts[1].to_string());
        c.ctl = parts[2].parse().unwrap();
        c
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr(n: &Node) -> String {
    n.listen_addrs()[0].to_string()
}

/// The child: `t::echo` (writes its init data as a JSON line, then echoes
/// every byte), and a control port: `["open", reply, parent, addr]` opens
/// a data connection to the parent's `p::upper`, writes `hello`, and
/// replies `["ok", answer, tls]` or `["err", error]`.
#[test]
#[ignore = "the child process of the other tests"]
fn child_node() {
    assert!(
        std::env::var_os("AEMP_DC_CHILD").is_some(),
        "child_node is the child process of the other tests"
    );
    let cert = std::env::var_os("AEMP_DC_CERT").map(|p| std::fs::read_to_string(p).unwrap());
    let dial = std::env::var("AEMP_DC_DIAL").ok();
    let n = start(config("child", dial.is_none(), cert.as_deref()));
    n.register_dataconn("t::echo", |args, mut conn| {
        conn.write_all(format!("{}\n", json(&args)).as_bytes())
            .unwrap();
        let mut reader = conn.try_clone().unwrap();
        let _ = std::io::copy(&mut reader, &mut conn);
        let _ = conn.shutdown(Shutdown::Write);
    })
    .unwrap();
    let node = n.clone();
    let ctl = n.port_fn(move |m| {
        let (Some(reply), Some(parent), Some(at)) = (
            m.get(1).and_then(|v| PortId::try_from(v).ok()),
            m.get(2).and_then(|v| v.as_str()),
            m.get(3).and_then(|v| v.as_str()),
        ) else {
            return;
        };
        let parent: NodeId = parent.parse().unwrap();
        if !at.is_empty() {
            node.add_address(&parent, at).unwrap();
        }
        let node = node.clone();
        std::thread::spawn(move || {
            let answer = node
                .data_connect(&parent, LIMIT, "p::upper", msg!["from child"])
                .map_err(|e| e.to_string())
                .and_then(|mut c| {
                    let mut text = String::new();
                    c.write_all(b"hello")
                        .and_then(|()| c.shutdown(Shutdown::Write))
                        .and_then(|()| c.read_to_string(&mut text))
                        .map_err(|e| e.to_string())?;
                    Ok((text, c.is_tls()))
                });
            match answer {
                Ok((text, tls)) => node.snd(&reply, msg!["ok", text, tls]),
                Err(e) => node.snd(&reply, msg!["err", e]),
            }
        });
    });
    let listen = match &dial {
        Some(parent) => {
            let (id, at) = parent.split_once('=').unwrap();
            let id: NodeId = id.parse().unwrap();
            n.add_address(&id, at).unwrap();
            // Any message brings the connection up.
            n.snd(&id.node_port(), msg!["devnull"]);
            eventually(|| n.node_is_up(&id) == Some(true));
            "-".to_string()
        }
        None => addr(&n),
    };
    println!("READY {} {listen} {ctl}", n.id());
    // Until killed (or, as a safety net, for two minutes).
    std::thread::sleep(Duration::from_secs(120));
}

/// A parent node that knows the child's address.
fn parent(child: &ChildNode, cert: Option<&str>) -> Node {
    let p = start(config("parent", true, cert));
    if let Some(a) = &child.addr {
        p.add_address(&child.node, a).unwrap();
    }
    p
}

/// Opens a data connection to the child's `t::echo`, sends `n` bytes,
/// checks the init data and that every byte comes back.
fn echo(p: &Node, child: &NodeId, n: usize) -> DataConn {
    let mut conn = p
        .data_connect(child, LIMIT, "t::echo", msg!["x", 1])
        .unwrap();
    assert_eq!(conn.peer_node(), child);
    let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let mut writer = conn.try_clone().unwrap();
    let sent = data.clone();
    let w = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    conn.set_read_timeout(Some(LIMIT)).unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    w.join().unwrap();
    let line_end = got.iter().position(|&b| b == b'\n').unwrap();
    assert_eq!(&got[..line_end], br#"["x",1]"#);
    assert!(got[line_end + 1..] == data[..], "echoed bytes differ");
    conn
}

/// A read with a time-out, when nothing comes, fails with the time-out;
/// the connection still works after it.
fn read_times_out(p: &Node, child: &NodeId) {
    let mut conn = p.data_connect(child, LIMIT, "t::echo", msg![]).unwrap();
    let mut line = [0u8; 3];
    conn.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"[]\n");
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 16];
    let e = conn.read(&mut buf).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e:?}"
    );
    conn.set_read_timeout(Some(LIMIT)).unwrap();
    conn.write_all(b"after").unwrap();
    let mut got = [0u8; 5];
    conn.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"after");
}

/// The child opens a data connection to the parent (`p::upper`).
fn from_child(p: &Node, child: &ChildNode, give_addr: bool) -> (String, bool) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let reply = p.port_fn(move |m| {
        let _ = tx.send(m);
    });
    let at = if give_addr { addr(p) } else { String::new() };
    p.snd(
        &child.ctl,
        msg!["open", reply.as_str(), p.id().as_str(), at],
    );
    let m: Message = recv(&rx);
    assert_eq!(m[0], "ok", "{m}");
    (m[1].as_str().unwrap().to_string(), m[2].as_bool().unwrap())
}

#[test]
fn both_directions_plain() {
    let child = ChildNode::start(None, None);
    let p = parent(&child, None);
    let conn = echo(&p, &child.node, 32 << 20);
    assert!(!conn.is_tls());
    read_times_out(&p, &child.node);
    // The other way: the child dials the parent's listener.
    let (text, tls) = from_child(&p, &child, true);
    assert_eq!(text, r#"HELLO ["from child"]"#);
    assert!(!tls);
}

#[test]
fn both_directions_tls() {
    let pem = self_signed();
    let child = ChildNode::start(Some(&pem), None);
    let p = parent(&child, Some(&pem));
    // Much more than the sockets buffer, both ways at once: a writer
    // blocked on a full socket must not keep the reader from the session.
    let conn = echo(&p, &child.node, 32 << 20);
    assert!(conn.is_tls());
    read_times_out(&p, &child.node);
    let (text, tls) = from_child(&p, &child, true);
    assert_eq!(text, r#"HELLO ["from child"]"#);
    assert!(tls);
}

#[test]
fn a_node_without_listeners_connects_back() {
    let p = start(config("parent", true, None));
    let child = ChildNode::start(None, Some(&p));
    assert!(child.addr.is_none());
    eventually(|| p.node_is_up(&child.node) == Some(true));
    // We know no address of the child: it is asked to connect to us.
    echo(&p, &child.node, 64 << 10);
    // The child asks us, we know no address of it: we ask it to connect
    // back, and it does.
    let (text, _) = from_child(&p, &child, false);
    assert_eq!(text, r#"HELLO ["from child"]"#);
}

/// A port that records how it was killed, and a node-up child without
/// listeners whose address we believe to be `at`.
fn watched(p: &Node) -> (PortId, Receiver<aemp::Reason>, aemp::MonGuard) {
    let port = p.port_fn(|_| {});
    let (tx, rx) = crossbeam_channel::unbounded();
    let guard = p.mon(&port, move |r| {
        let _ = tx.send(r);
    });
    (port, rx, guard)
}

#[test]
fn a_wrong_secret_kills_the_port_with_the_dataconn_reason() {
    let p = start(config("parent", true, None));
    let child = ChildNode::start(None, Some(&p));
    eventually(|| p.node_is_up(&child.node) == Some(true));
    // The child's "listener" is another node's, with another secret.
    let other = Node::with_config(config("other", true, None).secret("not s")).unwrap();
    p.add_address(&child.node, &addr(&other)).unwrap();
    let err = p
        .data_connect(&child.node, LIMIT, "t::echo", msg![])
        .unwrap_err();
    assert!(err.to_string().contains("authentication"), "{err}");
    // The callback form: the port is killed with the reason.
    let (port, killed, _guard) = watched(&p);
    let pn = p.clone();
    let cn = child.node.clone();
    p.peval(&port, move || {
        pn.data_connect_cb(&cn, LIMIT, "t::echo", msg![], |_| {
            panic!("no connection expected")
        })
        .unwrap();
    });
    let reason = recv(&killed);
    assert_eq!(reason[0], "AnyEvent::MP::DataConn", "{reason}");
    assert!(
        reason[1].as_str().unwrap().contains("authentication"),
        "{reason}"
    );
}

#[test]
fn a_time_out_kills_the_port_with_the_dataconn_reason() {
    let p = start(config("parent", true, None));
    let child = ChildNode::start(None, Some(&p));
    eventually(|| p.node_is_up(&child.node) == Some(true));
    // The child's "listener" accepts but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    p.add_address(&child.node, &silent.local_addr().unwrap().to_string())
        .unwrap();
    let (port, killed, _guard) = watched(&p);
    let pn = p.clone();
    let cn = child.node.clone();
    p.peval(&port, move || {
        pn.data_connect_cb(&cn, Duration::from_millis(500), "t::echo", msg![], |_| {
            panic!("no connection expected")
        })
        .unwrap();
    });
    let reason = recv(&killed);
    assert_eq!(reason[0], "AnyEvent::MP::DataConn", "{reason}");
    let why = reason[1].as_str().unwrap();
    assert!(why.contains("within 0.5 seconds"), "{reason}");
    let err = p
        .data_connect(&child.node, Duration::from_millis(300), "t::echo", msg![])
        .unwrap_err();
    assert!(err.to_string().contains("within 0.3 seconds"), "{err}");
}

#[test]
fn messages_keep_flowing_during_a_bulk_transfer() {
    let child = ChildNode::start(None, None);
    let p = parent(&child, None);
    let mut conn = p
        .data_connect(&child.node, LIMIT, "t::echo", msg![])
        .unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while byte[0] != b'\n' {
        conn.read_exact(&mut byte).unwrap();
        line.push(byte[0]);
    }
    let total = 64usize << 20;
    let mut writer = conn.try_clone().unwrap();
    let w = std::thread::spawn(move || {
        let chunk = vec![7u8; 1 << 16];
        for _ in 0..total / chunk.len() {
            writer.write_all(&chunk).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let r = std::thread::spawn(move || {
        let mut sink = vec![0u8; 1 << 16];
        let mut n = 0;
        loop {
            match conn.read(&mut sink).unwrap() {
                0 => return n,
                k => n += k,
            }
        }
    });
    // Meanwhile, ping-pong over the message connection (the child's
    // control port answers an unknown command with nothing, so ask the
    // node port for the time instead).
    let (tx, rx) = crossbeam_channel::unbounded();
    let reply = p.port_fn(move |m| {
        let _ = tx.send(m);
    });
    for _ in 0..20 {
        p.snd(&child.node.node_port(), msg!["time", reply.as_str()]);
        let _: Message = recv(&rx);
    }
    w.join().unwrap();
    assert_eq!(r.join().unwrap(), total);
}

#[test]
fn the_own_node_is_a_socket_pair() {
    let p = start(config("self", true, None));
    let mut conn = p.data_connect(p.id(), LIMIT, "p::upper", msg![2]).unwrap();
    conn.write_all(b"own").unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    assert_eq!(text, "OWN [2]");
    let err = p
        .data_connect(p.id(), LIMIT, "p::nothing", msg![])
        .unwrap_err();
    assert!(err.to_string().contains("p::nothing"), "{err}");
}

/// What a Perl node does when it opens a data connection to us, on the
/// wire: `_expect` arrives (here sent locally), then a TCP connection to
/// our listener greeting `aemp-dataconn;1;<node>;...;dataconn_id=<id>`
/// exactly as Perl's Transport.pm writes it (keys in its order, no
/// `mproto`); after the auth lines, raw bytes both ways.
#[test]
fn a_perl_shaped_dialer_reaches_a_rust_listener() {
    use aemp::transport::handshake::{Config as HsConfig, Event, Handshake};
    use std::net::TcpStream;
    use std::time::Instant;
    let b = start(config("rust", true, None));
    let (tx, rx) = crossbeam_channel::unbounded();
    b.register_dataconn("t::perl", move |args, mut conn| {
        let _ = tx.send((json(&args), conn.peer_node().to_string()));
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        conn.write_all(text.to_uppercase().as_bytes()).unwrap();
    })
    .unwrap();
    let id = "b@perlnode";
    b.snd(
        b.node_port(),
        msg![
            "AnyEvent::MP::DataConn::_expect",
            id,
            "perlnode#p1",
            5.0,
            "t::perl",
            "init",
            7
        ],
    );
    let mut cfg = HsConfig::new("perlnode");
    cfg.secret = Some(b"s".to_vec());
    cfg.protocol = "aemp-dataconn".into();
    let line1 = format!(
        "aemp-dataconn;1;perlnode;tls_sha3_512,hmac_sha3_512,tls_anon,cleartext;cbor,json,storable;dataconn_id={id};provider=AE-2.02;peeraddr={}",
        addr(&b)
    );
    let mut hs = Handshake::with_lines(cfg, Instant::now(), line1, "UGVybE5vbmNl".into());
    let mut sock = TcpStream::connect(addr(&b)).unwrap();
    sock.set_read_timeout(Some(LIMIT)).unwrap();
    sock.write_all(&hs.take_output()).unwrap();
    let mut buf = [0u8; 4096];
    let leftover = loop {
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "the listener closed during the handshake");
        let events = hs.feed(&buf[..n]).unwrap();
        sock.write_all(&hs.take_output()).unwrap();
        if let Some(est) = events.into_iter().find_map(|e| match e {
            Event::Established(est) => Some(est),
            _ => None,
        }) {
            // The listener greeted with plain `aemp` and switched.
            assert_eq!(est.peer_greeting.protocol, "aemp");
            break est.leftover;
        }
    };
    assert!(leftover.is_empty());
    let (args, peer) = recv(&rx);
    assert_eq!(args, r#"["init",7]"#);
    assert_eq!(peer, "perlnode");
    sock.write_all(b"raw bytes").unwrap();
    sock.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "RAW BYTES");
}
