//! Bulk figures against the network peer (see net.rs): large messages in
//! both framings beside raw TCP, and what a stream of large messages does
//! to the round trips of small ones on the same connection.

use super::net::{
    mean, one_kib, oneway_with, peer, percentile, roundtrip, roundtrip_legs, tcp_bandwidth,
    tcp_roundtrip,
};
use super::polling::budget;
use super::{median, Figure, Group};
use aemp::msg;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The bulk figure groups.
pub fn groups(quick: bool) -> Vec<Group> {
    let runs = if quick { 3 } else { 5 };
    let n1k: u64 = if quick { 20_000 } else { 200_000 };
    let n64k: u64 = if quick { 1_000 } else { 5_000 };
    let rounds: u32 = if quick { 500 } else { 2_000 };
    vec![
        Group::new("remote_1k_cbor", move || {
            let p = peer();
            one_kib(
                &p.csink,
                n1k,
                runs,
                [
                    "remote_1k_cbor_mb_per_s",
                    "remote_1k_cbor_unpaced_mb_per_s",
                    "baseline_tcp_mb_per_s_beside_cbor",
                    "remote_1k_cbor_vs_tcp_bandwidth",
                ],
            )
        }),
        Group::new("remote_64k", move || {
            let p = peer();
            let text = "x".repeat(64 << 10);
            let size = text.len() as f64;
            // Paced by `snd_wait`: 5,000 messages of 64 KiB would pass
            // the 128 MiB `unsent_limit` if sent faster than the
            // connection takes them.
            let json = median(runs, || {
                oneway_with(&p.jsink, n64k, |_| msg!["tag", &text], true) * size / 1e6
            });
            let cbor = median(runs, || {
                oneway_with(&p.csink, n64k, |_| msg!["tag", &text], true) * size / 1e6
            });
            let tcp = median(runs, || {
                tcp_bandwidth(&p.raw_sink, n64k as usize * (64 << 10))
            });
            vec![
                Figure::new("remote_64k_mb_per_s", json, "MB/s"),
                Figure::new("remote_64k_cbor_mb_per_s", cbor, "MB/s"),
                Figure::new("baseline_tcp_mb_per_s", tcp, "MB/s"),
                Figure::new("remote_64k_vs_tcp_bandwidth", json / tcp, "ratio"),
            ]
        }),
        Group::new("pingpong_during_64k", move || {
            let p = peer();
            let idle = median(runs, || mean(&roundtrip(&p.local, &p.jecho, rounds)));
            let idle_legs = roundtrip_legs(&p.local, &p.jclock, rounds);
            // 64 KiB messages streaming to another port of the same peer
            // node, over the same connection, while the round trips run.
            let stop = Arc::new(AtomicBool::new(false));
            let stream_start = Instant::now();
            let streamer = {
                let stop = stop.clone();
                let (node, sink) = (p.local.clone(), p.jsink.clone());
                std::thread::spawn(move || {
                    let text = "x".repeat(64 << 10);
                    while !stop.load(Ordering::Relaxed) {
                        // Waits while a megabyte is unsent: the stream
                        // runs at the connection's pace, not the memory's.
                        if node
                            .snd_wait(
                                &sink,
                                msg!["tag", &text],
                                std::time::Duration::from_secs(30),
                            )
                            .is_err()
                        {
                            break;
                        }
                    }
                })
            };
            // The mean (the figure) beside the median and the 99th
            // percentile of every round trip of the runs: on a machine
            // whose CPUs the stream fills, the mean is its tail's.
            let mut all = Vec::new();
            let busy = median(runs, || {
                let v = roundtrip(&p.local, &p.jecho, rounds);
                all.extend_from_slice(&v);
                mean(&v)
            });
            // Where the time goes: the leg there (behind the stream) and
            // the leg back (no stream on it; only the machine's load).
            let legs = roundtrip_legs(&p.local, &p.jclock, rounds);
            let leg = |legs: &[(f64, f64)], which: fn(&(f64, f64)) -> f64| {
                percentile(&legs.iter().map(which).collect::<Vec<_>>(), 50)
            };
            let (there, back) = (leg(&legs, |l| l.0), leg(&legs, |l| l.1));
            // The leg there beyond the leg back: what the ping waits
            // behind the stream, apart from what the machine's load costs
            // a leg with nothing queued ahead of it.
            let stall = (there - back).max(0.0);
            // What the same stream's load costs raw TCP's round trips
            // (polling) on a connection of their own, where nothing queues
            // ahead of them: the part of the figure that is the machine
            // being busy, not the ping waiting behind the stream.
            let mut tcp_beside_all = Vec::new();
            let tcp_beside = median(runs, || {
                let v = tcp_roundtrip(&p.raw_poll, rounds, budget());
                tcp_beside_all.extend_from_slice(&v);
                mean(&v)
            });
            stop.store(true, Ordering::Relaxed);
            streamer.join().unwrap();
            // The sink counted the stream (and resets for the next
            // figures): its pace in this run, round trips and all.
            let (tx, rx) = crossbeam_channel::bounded(1);
            let reply = p.local.port_fn(move |m| {
                let _ = tx.send(m);
            });
            p.local.snd(&p.jsink, msg!["end", &reply]);
            let count = rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("the peer did not answer");
            let stream_secs = stream_start.elapsed().as_secs_f64();
            let streamed = count.u64_at(1).expect("the sink's count").max(1);
            let one_64k_stream_us = stream_secs * 1e6 / streamed as f64;
            let _ = p.local.kil(&reply, aemp::Reason::normal());
            // One 64 KiB message's own transmission time at raw TCP speed.
            let tcp = tcp_bandwidth(&p.raw_sink, 64 << 20);
            let one_64k_us = (64 << 10) as f64 / tcp;
            // What the stream's load costs raw TCP's round trips (polling,
            // as aemp's threads do) on a connection of their own, where
            // nothing can queue ahead of them.
            let mut tcp_all = Vec::new();
            let tcp_busy = median(runs, || {
                raw_stream_beside(&p.raw_sink, || {
                    let v = tcp_roundtrip(&p.raw_poll, rounds, budget());
                    tcp_all.extend_from_slice(&v);
                    mean(&v)
                })
            });
            vec![
                Figure::new("remote_pingpong_during_64k_stream_us", busy, "us"),
                Figure::new(
                    "remote_pingpong_during_64k_stream_p50_us",
                    percentile(&all, 50),
                    "us",
                ),
                Figure::new(
                    "remote_pingpong_during_64k_stream_p99_us",
                    percentile(&all, 99),
                    "us",
                ),
                Figure::new(
                    "remote_pingpong_during_64k_stream_there_p50_us",
                    there,
                    "us",
                ),
                Figure::new("remote_pingpong_during_64k_stream_back_p50_us", back, "us"),
                Figure::new(
                    "remote_pingpong_during_64k_stream_stall_p50_us",
                    stall,
                    "us",
                ),
                Figure::new(
                    "remote_pingpong_during_64k_stream_stall_vs_one_64k",
                    stall / one_64k_us,
                    "ratio",
                ),
                Figure::new(
                    "remote_pingpong_idle_there_p50_us",
                    leg(&idle_legs, |l| l.0),
                    "us",
                ),
                Figure::new(
                    "remote_pingpong_idle_back_p50_us",
                    leg(&idle_legs, |l| l.1),
                    "us",
                ),
                Figure::new("remote_pingpong_idle_us", idle, "us"),
                Figure::new(
                    "baseline_tcp_poll_pingpong_during_aemp_stream_us",
                    tcp_beside,
                    "us",
                ),
                Figure::new(
                    "baseline_tcp_poll_pingpong_during_aemp_stream_p50_us",
                    percentile(&tcp_beside_all, 50),
                    "us",
                ),
                Figure::new(
                    "baseline_tcp_poll_pingpong_during_aemp_stream_p99_us",
                    percentile(&tcp_beside_all, 99),
                    "us",
                ),
                Figure::new("baseline_one_64k_transmission_us", one_64k_us, "us"),
                Figure::new(
                    "baseline_one_64k_at_stream_pace_us",
                    one_64k_stream_us,
                    "us",
                ),
                Figure::new(
                    "baseline_tcp_poll_pingpong_during_tcp_stream_us",
                    tcp_busy,
                    "us",
                ),
                Figure::new(
                    "baseline_tcp_poll_pingpong_during_tcp_stream_p99_us",
                    percentile(&tcp_all, 99),
                    "us",
                ),
            ]
        }),
    ]
}

/// Runs `f` while raw TCP streams 64 KiB writes to the sink at `addr` on
/// a connection of its own.
fn raw_stream_beside(addr: &str, f: impl FnOnce() -> f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let streamer = {
        let (stop, addr) = (stop.clone(), addr.to_string());
        std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("raw sink");
            let chunk = vec![b'x'; 64 << 10];
            while !stop.load(Ordering::Relaxed) {
                s.write_all(&chunk).expect("raw sink reads");
            }
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut count = [0u8; 8];
            s.read_exact(&mut count).expect("sink count");
        })
    };
    let v = f();
    stop.store(true, Ordering::Relaxed);
    streamer.join().unwrap();
    v
}
