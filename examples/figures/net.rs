//! Network figures: this process against a peer process (the figures
//! binary re-run with `--net-peer`), over TCP on 127.0.0.1.
//!
//! The peer runs two nodes, one accepting only json and one preferring
//! cbor (each direction uses the receiver's preference), each with a
//! sink port (counts `["tag", ...]`, answers `["end", reply]` with the
//! count) and an echo port (`[reply, x]` → `[x]`); the json node also a
//! clock echo (`[reply, x]` → `[x, its wall clock in ns]`, to split a
//! round trip into its two legs); plus raw TCP servers
//! for the baselines: an echo server that blocks in `read`, one that polls
//! first (as aemp's threads do, with the same budget), and a sink that
//! reads bytes as fast as it can.

use super::polling::{budget, Polling};
use super::{median, paired, Figure, Group};
use aemp::transport::Framing;
use aemp::{msg, Config, Node, PortId};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub(super) const SECRET: &str = "figures";

fn peer_node(tag: &str, framings: &[Framing]) -> (Node, PortId, PortId, PortId) {
    let node = Node::with_config(
        Config::new(format!("fig-{tag}/%u"))
            .bind("127.0.0.1:0")
            .secret(SECRET)
            .framings(framings),
    )
    .expect("peer node");
    let mut count = 0u64;
    let n = node.clone();
    let sink = node.port_fn(move |m| {
        if m.tag() == Some("end") {
            if let Ok(reply) = PortId::try_from(&m[1]) {
                n.snd(&reply, msg!["count", count]);
            }
            count = 0;
        } else {
            count += 1;
        }
    });
    // A data connection sink for the dataconn figures: reads until the
    // caller half-closes, then answers the count (as the raw sink).
    node.register_dataconn("fig::sink", |_, mut conn| {
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            total += n as u64;
        }
        let _ = conn.write_all(&total.to_le_bytes());
    })
    .expect("register fig::sink");
    let n = node.clone();
    let echo = node.port_fn(move |m| {
        if let Some(Ok(reply)) = m.first().map(PortId::try_from) {
            n.snd(&reply, m[1..].iter().cloned().collect());
        }
    });
    let n = node.clone();
    let clock_echo = node.port_fn(move |m| {
        if let (Some(Ok(reply)), Some(x)) = (m.port_at(0), m.u64_at(1)) {
            n.snd(&reply, msg![x, wall_clock_ns()]);
        }
    });
    (node, sink, echo, clock_echo)
}

/// This machine's wall clock in ns, which both processes read alike.
fn wall_clock_ns() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| d.as_nanos() as u64)
}

/// The peer process: prints `READY` with what the measuring side needs,
/// then serves until its stdin closes.
pub fn peer_main() {
    let (json, jsink, jecho, jclock) = peer_node("json", &[Framing::Json]);
    let (cbor, csink, cecho, _) = peer_node("cbor", &[Framing::Cbor, Framing::Json]);
    let raw = TcpListener::bind("127.0.0.1:0").expect("raw listener");
    let raw_addr = raw.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in raw.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let _ = s.set_nodelay(true);
                let mut buf = [0u8; 32];
                while s.read_exact(&mut buf).is_ok() {
                    if s.write_all(&buf).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let poll_addr = serve_raw(|s| {
        let mut s = Polling::new(s, budget());
        let mut buf = [0u8; 32];
        while s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf).is_err() {
                return;
            }
        }
    });
    let sink_addr = serve_raw(|mut s| {
        // Reads until the client half-closes, then answers the count.
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        while let Ok(n @ 1..) = s.read(&mut buf) {
            total += n as u64;
        }
        let _ = s.write_all(&total.to_le_bytes());
    });
    println!(
        "READY {} {} {jsink} {jecho} {} {} {csink} {cecho} {raw_addr} {poll_addr} {sink_addr} {jclock}",
        json.id(),
        json.listen_addrs()[0],
        cbor.id(),
        cbor.listen_addrs()[0],
    );
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
        line.clear();
    }
}

/// A TCP server on 127.0.0.1 running `serve` on a thread per connection.
fn serve_raw(serve: fn(TcpStream)) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("raw listener");
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let _ = s.set_nodelay(true);
            std::thread::spawn(move || serve(s));
        }
    });
    addr
}

pub(super) struct Peer {
    pub(super) local: Node,
    pub(super) jsink: PortId,
    pub(super) jecho: PortId,
    /// The json node's clock echo.
    pub(super) jclock: PortId,
    pub(super) csink: PortId,
    pub(super) raw: String,
    pub(super) raw_poll: String,
    pub(super) raw_sink: String,
}

/// The peer process, started on first use; it exits when we do (its
/// stdin closes).
pub(super) fn peer() -> &'static Peer {
    static PEER: OnceLock<Peer> = OnceLock::new();
    PEER.get_or_init(|| {
        let (mut child, f) = super::start_peer("--net-peer");
        // Keep the pipe open for our lifetime.
        std::mem::forget(child.stdin.take());
        std::mem::forget(child);
        let local = Node::with_config(Config::new("fig-local/%u").secret(SECRET)).unwrap();
        local.add_address(&f[0].parse().unwrap(), &f[1]).unwrap();
        local.add_address(&f[4].parse().unwrap(), &f[5]).unwrap();
        let peer = Peer {
            local,
            jsink: f[2].parse().unwrap(),
            jecho: f[3].parse().unwrap(),
            jclock: f[11].parse().unwrap(),
            csink: f[6].parse().unwrap(),
            raw: f[8].to_string(),
            raw_poll: f[9].to_string(),
            raw_sink: f[10].to_string(),
        };
        // Connect both nodes before measuring.
        roundtrip(&peer.local, &peer.jecho, 1);
        roundtrip(&peer.local, &f[7].parse().unwrap(), 1);
        peer
    })
}

/// Sends `n` messages made by `make` to `sink`; returns messages/s.
pub(super) fn oneway(sink: &PortId, n: u64, make: impl Fn(u64) -> aemp::Message) -> f64 {
    oneway_with(sink, n, make, false)
}

/// [`oneway`], with `snd_wait` when `paced` (large messages: a sender
/// that outruns the connection by `unsent_limit` fails it, by design).
pub(super) fn oneway_with(
    sink: &PortId,
    n: u64,
    make: impl Fn(u64) -> aemp::Message,
    paced: bool,
) -> f64 {
    let local = &peer().local;
    let (tx, rx) = crossbeam_channel::bounded(1);
    let reply = local.port_fn(move |m| {
        let _ = tx.send(m);
    });
    let t = Instant::now();
    for i in 0..n {
        if paced {
            local
                .snd_wait(sink, make(i), Duration::from_secs(60))
                .expect("the peer reads");
        } else {
            local.snd(sink, make(i));
        }
    }
    local.snd(sink, msg!["end", &reply]);
    let got = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the peer did not answer");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(got, msg!["count", n], "messages lost");
    let _ = local.kil(&reply, aemp::Reason::normal());
    n as f64 / secs
}

/// Round trips through `echo` from a thread port (the pong goes straight
/// to its thread); the RTTs in µs.
pub(super) fn roundtrip(local: &Node, echo: &PortId, rounds: u32) -> Vec<f64> {
    trips(local, echo, rounds, |send, mb| {
        let t = Instant::now();
        send();
        let pong = mb.get_timeout(Duration::from_secs(30))?;
        Ok(pong.map(|_| t.elapsed().as_secs_f64() * 1e6))
    })
}

/// Round trips as [`roundtrip`], through a clock echo (see `peer_node`):
/// each trip's two legs in µs, (there, back), by the wall clock both
/// processes read.
pub(super) fn roundtrip_legs(local: &Node, clock_echo: &PortId, rounds: u32) -> Vec<(f64, f64)> {
    trips(local, clock_echo, rounds, |send, mb| {
        let sent = wall_clock_ns();
        send();
        let Some(pong) = mb.get_timeout(Duration::from_secs(30))? else {
            return Ok(None);
        };
        let back = wall_clock_ns();
        let there = pong.u64_at(1).expect("the clock echo's time");
        let us = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e3;
        Ok(Some((us(sent, there), us(there, back))))
    })
}

/// `rounds` round trips through `echo` from a thread port: `trip` sends
/// the ping (`[me, i]`) by calling its first argument, waits for the pong
/// and says what it measured (`None`: no pong).
fn trips<T: Send + 'static>(
    local: &Node,
    echo: &PortId,
    rounds: u32,
    trip: fn(&mut dyn FnMut(), &mut aemp::Mailbox) -> aemp::Result<Option<T>>,
) -> Vec<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let echo = echo.clone();
    local.port_thread(move |mb| {
        let me = mb.port().clone();
        let node = mb.node().clone();
        let mut results = Vec::with_capacity(rounds as usize);
        for i in 0..rounds {
            match trip(&mut || node.snd(&echo, msg![&me, i]), mb)? {
                Some(r) => results.push(r),
                None => break,
            }
        }
        let _ = tx.send(results);
        Ok::<(), aemp::Error>(())
    });
    let results = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("round trips did not finish");
    assert_eq!(results.len(), rounds as usize, "no pong from the peer");
    results
}

/// Raw TCP round trips of 32 bytes to the echo server at `addr`, reading
/// with `poll` (zero: blocking reads, as the blocking server does).
pub(super) fn tcp_roundtrip(addr: &str, rounds: u32, poll: Duration) -> Vec<f64> {
    let s = TcpStream::connect(addr).expect("raw peer");
    s.set_nodelay(true).unwrap();
    let mut s = Polling::new(s, poll);
    let mut buf = [7u8; 32];
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            s.write_all(&buf).unwrap();
            s.read_exact(&mut buf).unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// Raw TCP one way: `bytes` in 64 KiB writes to the sink; MB/s until the
/// sink has read them all.
pub(super) fn tcp_bandwidth(addr: &str, bytes: usize) -> f64 {
    let mut s = TcpStream::connect(addr).expect("raw sink");
    let chunk = vec![b'x'; 64 << 10];
    let t = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut count = [0u8; 8];
    s.read_exact(&mut count).expect("sink count");
    assert_eq!(u64::from_le_bytes(count), bytes as u64, "bytes lost");
    bytes as f64 / t.elapsed().as_secs_f64() / 1e6
}

/// `n` messages of 1 KiB to `sink`, paced by `snd_wait` (as raw TCP's
/// writes are by the socket buffer) beside raw TCP one way, and unpaced
/// (the sender outruns the connection and buffers most of the stream
/// first: fresh memory, and near the `unsent_limit` that fails a
/// connection by design). MB/s named by `names`: paced, unpaced, raw TCP,
/// and the ratio of paced to raw TCP.
pub(super) fn one_kib(sink: &PortId, n: u64, runs: usize, names: [&str; 4]) -> Vec<Figure> {
    let p = peer();
    let text = "x".repeat(1000);
    let mb = |paced| oneway_with(sink, n, |_| msg!["tag", &text], paced) * 1e-3;
    let bw = paired(
        runs,
        || mb(true),
        || tcp_bandwidth(&p.raw_sink, n as usize * 1000),
    );
    let unpaced = median(runs, || mb(false));
    vec![
        Figure::new(names[0], bw.a, "MB/s"),
        Figure::new(names[1], unpaced, "MB/s"),
        Figure::new(names[2], bw.b, "MB/s"),
        Figure::new(names[3], bw.ratio, "ratio"),
    ]
}

pub(super) fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn p99(v: &[f64]) -> f64 {
    percentile(v, 99)
}

/// The `pct`th percentile of `v` (not empty).
pub(super) fn percentile(v: &[f64], pct: usize) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[(v.len() * pct / 100).min(v.len() - 1)]
}

pub fn groups(quick: bool) -> Vec<Group> {
    let runs = if quick { 3 } else { 5 };
    let n: u64 = if quick { 200_000 } else { 1_000_000 };
    let n1k: u64 = if quick { 20_000 } else { 200_000 };
    let rounds: u32 = if quick { 2_000 } else { 10_000 };
    vec![
        Group::new("remote_oneway", move || {
            let p = peer();
            let json = median(runs, || oneway(&p.jsink, n, |i| msg!["tag", i]));
            let cbor = median(runs, || oneway(&p.csink, n, |i| msg!["tag", i]));
            vec![
                Figure::new("remote_oneway_msgs_per_s", json, "msgs/s"),
                Figure::new("remote_oneway_cbor_msgs_per_s", cbor, "msgs/s"),
            ]
        }),
        Group::new("remote_1k", move || {
            let p = peer();
            one_kib(
                &p.jsink,
                n1k,
                runs,
                [
                    "remote_1k_mb_per_s",
                    "remote_1k_unpaced_mb_per_s",
                    "baseline_tcp_mb_per_s",
                    "remote_1k_vs_tcp_bandwidth",
                ],
            )
        }),
        Group::new("remote_pingpong", move || {
            let p = peer();
            let mut all = Vec::new();
            let mut base_all = Vec::new();
            let rtt = paired(
                runs,
                || {
                    let v = roundtrip(&p.local, &p.jecho, rounds);
                    all.extend_from_slice(&v);
                    mean(&v)
                },
                || {
                    let v = tcp_roundtrip(&p.raw, rounds, Duration::ZERO);
                    base_all.extend_from_slice(&v);
                    mean(&v)
                },
            );
            let mut poll_all = Vec::new();
            let poll = paired(
                runs,
                || mean(&roundtrip(&p.local, &p.jecho, rounds)),
                || {
                    let v = tcp_roundtrip(&p.raw_poll, rounds, budget());
                    poll_all.extend_from_slice(&v);
                    mean(&v)
                },
            );
            let p99_aemp = p99(&all);
            vec![
                Figure::new("remote_pingpong_rtt_us", rtt.a, "us"),
                Figure::new("remote_pingpong_p99_us", p99_aemp, "us"),
                Figure::new("baseline_tcp_pingpong_rtt_us", rtt.b, "us"),
                Figure::new("baseline_tcp_pingpong_p99_us", p99(&base_all), "us"),
                Figure::new("remote_pingpong_vs_tcp", rtt.ratio, "ratio"),
                Figure::new("remote_pingpong_p99_vs_tcp_mean", p99_aemp / rtt.b, "ratio"),
                // The fair baseline: raw TCP whose ends poll as aemp's do.
                Figure::new("baseline_tcp_poll_pingpong_rtt_us", poll.b, "us"),
                Figure::new("baseline_tcp_poll_pingpong_p99_us", p99(&poll_all), "us"),
                Figure::new("remote_pingpong_vs_tcp_poll", poll.ratio, "ratio"),
            ]
        }),
    ]
}
