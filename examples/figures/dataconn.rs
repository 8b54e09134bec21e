//! Data connection figures, against the network figures' peer process
//! (net.rs): bytes through one data connection against raw TCP to the
//! peer's raw sink, and message ping-pong between the same nodes while a
//! transfer runs, beside the idle one and the one while raw TCP
//! transfers (`--only dataconn`).

use super::net::{mean, peer, roundtrip, tcp_bandwidth};
use super::{paired, Figure};
use aemp::{msg, NodeId};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// `bytes` in 64 KiB writes through a new data connection to the peer's
/// json node (`fig::sink`); MB/s until the sink has read them all
/// (connection set-up included, as the raw baseline's).
fn dataconn_bandwidth(node: &NodeId, bytes: usize) -> f64 {
    let local = &peer().local;
    let t = Instant::now();
    let mut conn = local
        .data_connect(node, Duration::from_secs(10), "fig::sink", msg![])
        .expect("data connection to the peer");
    let chunk = vec![b'x'; 64 << 10];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        conn.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let mut count = [0u8; 8];
    conn.read_exact(&mut count).expect("sink count");
    assert_eq!(u64::from_le_bytes(count), bytes as u64, "bytes lost");
    bytes as f64 / t.elapsed().as_secs_f64() / 1e6
}

/// Mean message ping-pong RTT to the peer while `transfer` runs again
/// and again on another thread.
fn rtt_during(rounds: u32, transfer: impl Fn() + Sync) -> f64 {
    let p = peer();
    std::thread::scope(|s| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let transfer = &transfer;
        let running = s.spawn(move || {
            let mut transfers = 0;
            while rx.try_recv().is_err() {
                transfer();
                transfers += 1;
            }
            transfers
        });
        // Let the first transfer get going.
        std::thread::sleep(Duration::from_millis(50));
        let v = roundtrip(&p.local, &p.jecho, rounds);
        let _ = tx.send(());
        assert!(running.join().expect("transfer thread") > 0);
        mean(&v)
    })
}

pub fn figures(quick: bool) -> Vec<Figure> {
    let runs = if quick { 3 } else { 5 };
    let bytes: usize = if quick { 256 << 20 } else { 1 << 30 };
    let rounds: u32 = if quick { 1_000 } else { 5_000 };
    let p = peer();
    let node = p.jecho.node_id();
    let bw = paired(
        runs,
        || dataconn_bandwidth(&node, bytes),
        || tcp_bandwidth(&p.raw_sink, bytes),
    );
    let idle = mean(&roundtrip(&p.local, &p.jecho, rounds));
    // Ping-pong while a transfer runs: through a data connection, and
    // (the machine's own share: both ends copy bytes on the same cores)
    // through raw TCP.
    let during = rtt_during(rounds, || {
        dataconn_bandwidth(&node, bytes);
    });
    let during_tcp = rtt_during(rounds, || {
        tcp_bandwidth(&p.raw_sink, bytes);
    });
    vec![
        Figure::new("dataconn_mb_per_s", bw.a, "MB/s"),
        // Raw TCP, the same bytes, in turns with the above (net.rs's
        // baseline_tcp_mb_per_s measures 1 KB messages' worth).
        Figure::new("dataconn_baseline_tcp_mb_per_s", bw.b, "MB/s"),
        Figure::new("dataconn_vs_tcp_bandwidth", bw.ratio, "ratio"),
        Figure::new("dataconn_pingpong_rtt_idle_us", idle, "us"),
        Figure::new("dataconn_pingpong_rtt_during_us", during, "us"),
        Figure::new("dataconn_pingpong_during_vs_idle", during / idle, "ratio"),
        Figure::new("dataconn_pingpong_rtt_during_tcp_us", during_tcp, "us"),
    ]
}
