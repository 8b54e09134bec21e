//! Failure detection and flow control: this process against peer
//! processes (the figures binary re-run with `--live-peer`), over TCP on
//! 127.0.0.1.
//!
//! - `stalled_peer_detect_ms`: the peer is SIGSTOPped; how long until the
//!   monitor of one of its ports fires (the heartbeat), beside the same
//!   for a peer killed with SIGKILL (the kernel's RST, the best TCP gives).
//! - `stalled_peer_sender_rss_mb`: this process's RSS growth while it
//!   floods a stopped peer with 1 KiB messages, beside the outgoing
//!   buffer's limit.
//! - `paced_send_msgs_per_s`: a producer using `snd_wait` to a consumer
//!   that takes 10 µs per message, beside the consumer's own rate (the
//!   same jobs sent with `snd`, which never waits); messages lost, the
//!   sender's RSS growth and the consumer's longest mailbox beside it.

use super::{median, Figure, Group};
use aemp::{msg, Config, Mailbox, Node, PortId};
use std::process::Child;
use std::time::{Duration, Instant};

const SECRET: &str = "figures-live";
const WORK: Duration = Duration::from_micros(10);

/// The consumer: takes [`WORK`] per `["job", ..]`; `["end", reply]` (a
/// `call`) answers `["count", jobs, longest mailbox seen]` and starts over.
fn consumer(mb: &mut Mailbox) -> aemp::Result<()> {
    let (mut count, mut longest) = (0u64, 0usize);
    loop {
        let m = mb.get()?;
        longest = longest.max(mb.len());
        match m.tag() {
            Some("job") => {
                let t = Instant::now();
                while t.elapsed() < WORK {
                    std::hint::spin_loop();
                }
                count += 1;
            }
            Some("end") => {
                if let Some(Ok(reply)) = m.last().map(PortId::try_from) {
                    mb.node().snd(&reply, msg!["count", count, longest]);
                }
                count = 0;
                longest = 0;
            }
            _ => {}
        }
    }
}

/// The peer process: a node with the consumer and an echo port; prints
/// `READY node addr consumer echo`, then serves until its stdin closes.
pub fn peer_main() {
    let node = Node::with_config(
        Config::new("fig-live/%u")
            .bind("127.0.0.1:0")
            .secret(SECRET),
    )
    .expect("peer node");
    let n = node.clone();
    let echo = node.port_fn(move |m| {
        if let Some(Ok(reply)) = m.first().map(PortId::try_from) {
            n.snd(&reply, m[1..].iter().cloned().collect());
        }
    });
    let consumer = node.port_thread(consumer);
    println!(
        "READY {} {} {consumer} {echo}",
        node.id(),
        node.listen_addrs()[0]
    );
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
        line.clear();
    }
}

/// A running peer process; killed when dropped.
struct Peer {
    child: Child,
    node: aemp::NodeId,
    addr: String,
    consumer: PortId,
    echo: PortId,
}

impl Peer {
    fn start() -> Peer {
        let (child, f) = super::start_peer("--live-peer");
        Peer {
            node: f[0].parse().unwrap(),
            addr: f[1].to_string(),
            consumer: f[2].parse().unwrap(),
            echo: f[3].parse().unwrap(),
            child,
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// A node of ours connected to the peer (a round trip done).
    fn connect(&self, cfg: Config) -> Node {
        let node = Node::with_config(cfg.secret(SECRET)).expect("local node");
        node.add_address(&self.node, &self.addr).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let reply = node.port_fn(move |m| {
            let _ = tx.send(m);
        });
        node.snd(&self.echo, msg![&reply, "hi"]);
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the peer did not answer");
        node
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Milliseconds from `signal` to the peer until a monitor of its echo
/// port fires, with a heartbeat of `tick`.
fn detect_ms(tick: Duration, signal: i32) -> f64 {
    let peer = Peer::start();
    let node = peer.connect(Config::new("fig-watch/%u").tick(tick));
    let (tx, rx) = crossbeam_channel::bounded(1);
    node.mon(&peer.echo, move |r| {
        let _ = tx.send(r);
    })
    .forget();
    let t = Instant::now();
    peer.signal(signal);
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the monitor never fired");
    t.elapsed().as_secs_f64() * 1e3
}

/// Peak RSS growth (MB) while flooding a stopped peer with 1 KiB
/// messages for `secs`.
fn flood_rss_mb(secs: f64) -> f64 {
    let peer = Peer::start();
    let node = peer.connect(Config::new("fig-flood/%u"));
    let kib = "x".repeat(1024);
    let reply = node.port();
    let before = super::rss();
    let mut peak = before;
    peer.signal(libc::SIGSTOP);
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < secs {
        for _ in 0..1024 {
            node.snd(&peer.echo, msg![&reply, &kib]);
        }
        peak = peak.max(super::rss());
    }
    (peak - before) / 1e6
}

/// What [`feed`] saw.
struct Fed {
    rate: f64,
    lost: f64,
    rss_mb: f64,
    longest_mailbox: f64,
}

/// `n` jobs to the peer's 10 µs consumer, with `snd_wait` if `wait`, else
/// with `snd`; the rate is jobs/s until the consumer has taken them all.
fn feed(peer: &Peer, node: &Node, n: u64, wait: bool) -> Fed {
    let before = super::rss();
    let mut peak = before;
    let t = Instant::now();
    for i in 0..n {
        let job = msg!["job", i];
        if wait {
            node.snd_wait(&peer.consumer, job, Duration::from_secs(60))
                .expect("snd_wait");
        } else {
            node.snd(&peer.consumer, job);
        }
        if i % 1024 == 0 {
            peak = peak.max(super::rss());
        }
    }
    let got = node
        .call(&peer.consumer, msg!["end"], Duration::from_secs(120))
        .expect("the consumer did not answer");
    let count = got[1].as_u64().unwrap_or(0);
    Fed {
        rate: n as f64 / t.elapsed().as_secs_f64(),
        lost: (n - count.min(n)) as f64,
        rss_mb: (peak - before) / 1e6,
        longest_mailbox: got[2].as_f64().unwrap_or(0.0),
    }
}

pub fn groups(quick: bool) -> Vec<Group> {
    let runs = if quick { 1 } else { 3 };
    vec![
        Group::new("stalled_peer_detect", move || {
            let tick = Duration::from_secs(1);
            let stopped = median(runs, || detect_ms(tick, libc::SIGSTOP));
            let killed = median(runs, || detect_ms(tick, libc::SIGKILL));
            let mut v = vec![
                Figure::new("stalled_peer_detect_ms", stopped, "ms"),
                Figure::new("baseline_killed_peer_detect_ms", killed, "ms"),
            ];
            // The default tick takes 13 s a run: full runs only.
            if !quick {
                let default = detect_ms(Config::default().tick, libc::SIGSTOP);
                v.push(Figure::new(
                    "stalled_peer_detect_default_tick_ms",
                    default,
                    "ms",
                ));
            }
            v
        }),
        Group::new("stalled_peer_sender_rss", move || {
            let secs = if quick { 3.0 } else { 10.0 };
            let grew = flood_rss_mb(secs);
            let limit = Config::default().unsent_limit as f64 / 1e6;
            vec![
                Figure::new("stalled_peer_sender_rss_mb", grew, "MB"),
                Figure::new("unsent_limit_mb", limit, "MB"),
            ]
        }),
        Group::new("paced_send", move || {
            let n = if quick { 20_000 } else { 200_000 };
            let peer = Peer::start();
            let node = peer.connect(Config::new("fig-paced/%u"));
            // In turns, so that a slow spell of the machine hits both.
            let (mut waited, mut plain) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                waited.push(feed(&peer, &node, n, true));
                plain.push(feed(&peer, &node, n, false));
            }
            let mid = |v: &[Fed]| {
                let mut r: Vec<f64> = v.iter().map(|f| f.rate).collect();
                r.sort_by(f64::total_cmp);
                r[r.len() / 2]
            };
            let most = |f: fn(&Fed) -> f64| waited.iter().map(f).fold(0.0, f64::max);
            let (rate, base) = (mid(&waited), mid(&plain));
            vec![
                Figure::new("paced_send_msgs_per_s", rate, "msgs/s"),
                Figure::new("baseline_consumer_msgs_per_s", base, "msgs/s"),
                Figure::new("paced_send_vs_consumer", rate / base, "ratio"),
                Figure::new("paced_send_lost_msgs", most(|f| f.lost), "msgs"),
                Figure::new("paced_send_sender_rss_mb", most(|f| f.rss_mb), "MB"),
                Figure::new(
                    "paced_send_consumer_longest_mailbox",
                    most(|f| f.longest_mailbox),
                    "msgs",
                ),
            ]
        }),
    ]
}
