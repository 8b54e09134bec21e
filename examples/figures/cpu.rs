//! What the busy-wait costs in CPU: per round trip against the network
//! peer (see net.rs) beside raw TCP polling the same way, an idle
//! connected node, and two nodes of this process exchanging messages at a
//! paced, moderate rate, with the default busy-wait and with none.

use super::net::{peer, roundtrip, tcp_roundtrip, SECRET};
use super::polling::budget;
use super::{median, Figure, Group};
use aemp::{msg, Config, Node};
use std::time::{Duration, Instant};

/// CPU seconds (user + system) this process used so far.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU seconds `f` used in this process.
fn cpu_of(f: impl FnOnce()) -> f64 {
    let before = cpu_secs();
    f();
    cpu_secs() - before
}

/// The CPU figure groups.
pub fn groups(quick: bool) -> Vec<Group> {
    let runs = if quick { 3 } else { 5 };
    let rounds: u32 = if quick { 5_000 } else { 20_000 };
    let paced_secs = if quick { 1.0 } else { 3.0 };
    vec![
        Group::new("cpu_rtt", move || {
            let p = peer();
            let per = 100_000.0 / f64::from(rounds);
            let aemp = median(runs, || {
                cpu_of(|| drop(roundtrip(&p.local, &p.jecho, rounds))) * per
            });
            let tcp = median(runs, || {
                cpu_of(|| drop(tcp_roundtrip(&p.raw_poll, rounds, budget()))) * per
            });
            let idle = {
                let _ = roundtrip(&p.local, &p.jecho, 10);
                // Let what earlier figures left (a queued stream, spins
                // running out their budget) finish first.
                std::thread::sleep(Duration::from_millis(300));
                let t = Instant::now();
                let cpu = cpu_of(|| std::thread::sleep(Duration::from_secs(1)));
                cpu / t.elapsed().as_secs_f64()
            };
            vec![
                Figure::new("cpu_s_per_100k_rtt", aemp, "s"),
                Figure::new("baseline_tcp_poll_cpu_s_per_100k_rtt", tcp, "s"),
                Figure::new("idle_node_cpu_cores", idle, "cores"),
            ]
        }),
        Group::new("cpu_paced", move || {
            let on = median(runs, || paced_cores(10_000, paced_secs, None));
            let off = median(runs, || {
                paced_cores(10_000, paced_secs, Some(Duration::ZERO))
            });
            let on1k = median(runs, || paced_cores(1_000, paced_secs, None));
            let off1k = median(runs, || {
                paced_cores(1_000, paced_secs, Some(Duration::ZERO))
            });
            vec![
                Figure::new("cpu_paced_10k_cores", on, "cores"),
                Figure::new("cpu_paced_10k_busy_wait_off_cores", off, "cores"),
                Figure::new("cpu_paced_10k_vs_busy_wait_off", on / off, "ratio"),
                Figure::new("cpu_paced_1k_cores", on1k, "cores"),
                Figure::new("cpu_paced_1k_busy_wait_off_cores", off1k, "cores"),
            ]
        }),
    ]
}

/// Two nodes of this process over TCP on 127.0.0.1, one sending `rate`
/// messages a second to a callback port of the other for `secs`: the
/// cores this process used meanwhile (sender included). `busy_wait`:
/// both nodes' setting (`None`: the default).
fn paced_cores(rate: u32, secs: f64, busy_wait: Option<Duration>) -> f64 {
    let config = |tag: &str| {
        let c = Config::new(format!("fig-paced-{tag}/%u"))
            .bind("127.0.0.1:0")
            .secret(SECRET);
        match busy_wait {
            Some(b) => c.busy_wait(b),
            None => c,
        }
    };
    let (a, b) = (
        Node::with_config(config("a")).unwrap(),
        Node::with_config(config("b")).unwrap(),
    );
    a.add_address(b.id(), &b.listen_addrs()[0].to_string())
        .unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let sink = b.port_fn(move |m| {
        if m.tag() == Some("end") {
            let _ = tx.send(());
        }
    });
    // Connected before measuring.
    a.snd(&sink, msg!["warm"]);
    let n = (f64::from(rate) * secs) as u64;
    let gap = Duration::from_secs(1) / rate;
    let t = Instant::now();
    let cpu = cpu_of(|| {
        for i in 0..n {
            let due = t + gap * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            a.snd(&sink, msg!["tag", i]);
        }
        a.snd(&sink, msg!["end"]);
        rx.recv_timeout(Duration::from_secs(60)).unwrap();
    });
    let cores = cpu / t.elapsed().as_secs_f64();
    a.shutdown();
    b.shutdown();
    cores
}
