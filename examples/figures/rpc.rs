//! Process-RPC figures: round trip, pipelined and async throughput, and a
//! pool of two workers.
//!
//! Workers re-execute the figures program itself, so [`setup_worker`] must
//! run first thing in `main`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aemp::rpc::{self, Backend, Done, Pool, Raw, Rpc, Worker};

use super::polling::Polling;
use super::Figure;

const T: Duration = Duration::from_secs(120);

/// Registers the trivial worker functions the figures use, and serves them
/// when this process was started as a worker (then it never returns).
pub fn setup_worker() {
    rpc::register_sync("figures_echo", Raw, |v: Vec<u8>| v);
    rpc::register_async("figures_echo_async", Raw, |done: Done<Raw>, v: Vec<u8>| {
        done.done(v)
    });
    rpc::serve_if_worker().expect("serve_if_worker comes first in main");
}

/// Queues `n` calls at once and waits for all answers; returns calls/s.
fn flood(
    call: impl Fn(Vec<u8>, Box<dyn FnOnce(Result<Vec<u8>, rpc::Error>) + Send>),
    n: usize,
) -> f64 {
    let left = Arc::new(AtomicUsize::new(n));
    let (tx, rx) = crossbeam_channel::bounded(1);
    let t0 = Instant::now();
    for i in 0..n {
        let (left, tx) = (left.clone(), tx.clone());
        call(
            (i as u32).to_le_bytes().to_vec(),
            Box::new(move |r| {
                r.expect("figure call failed");
                if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    let _ = tx.send(());
                }
            }),
        );
    }
    rx.recv_timeout(T).expect("all calls answered");
    n as f64 / t0.elapsed().as_secs_f64()
}

fn spawn(function: &str, backend: Backend) -> Rpc<Raw> {
    Rpc::builder(Worker::current_exe(), function)
        .backend(backend)
        .spawn()
        .expect("start a worker")
}

/// Baseline for the round trip: one octet bounced between two threads over
/// a Unix socket pair (two wake-ups; so does an RPC round trip, whose
/// caller reads its answer itself while it polls); with `poll`, both ends
/// poll before they block (as aemp's threads do).
fn socket_ping_pong_us(n: usize, poll: bool) -> f64 {
    use std::os::unix::net::UnixStream;
    let budget = if poll {
        super::polling::budget()
    } else {
        Duration::ZERO
    };
    let (a, b) = UnixStream::pair().expect("socketpair");
    let (mut a, mut b) = (Polling::new(a, budget), Polling::new(b, budget));
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 1];
        while b.read_exact(&mut buf).is_ok() {
            if b.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let mut buf = [0u8; 1];
    let t0 = Instant::now();
    for _ in 0..n {
        a.write_all(&[1]).expect("ping");
        a.read_exact(&mut buf).expect("pong");
    }
    let us = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
    drop(a);
    echo.join().expect("echo thread");
    us
}

/// `n` sequential round trips through `call_wait`: µs each.
fn sync_rtt_us(n: usize, call_wait: impl Fn(Vec<u8>) -> Result<Vec<u8>, aemp::rpc::Error>) -> f64 {
    let t0 = Instant::now();
    for i in 0..n {
        call_wait((i as u32).to_le_bytes().to_vec()).expect("round trip");
    }
    t0.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// Measures the process-RPC figures; `quick` keeps it to a few seconds.
pub fn figures(quick: bool) -> Vec<Figure> {
    let scale = if quick { 5 } else { 1 };
    let mut out = Vec::new();
    out.push(Figure::new(
        "rpc_baseline_socket_rtt_us",
        socket_ping_pong_us(20_000 / scale, false),
        "us",
    ));
    out.push(Figure::new(
        "baseline_socketpair_poll_rtt_us",
        socket_ping_pong_us(20_000 / scale, true),
        "us",
    ));

    // Sequential round trips of a trivial function.
    let rpc = spawn("figures_echo", Backend::Sync);
    for _ in 0..200 {
        rpc.call_wait(vec![1], T).expect("warm-up");
    }
    out.push(Figure::new(
        "rpc_sync_rtt_us",
        sync_rtt_us(20_000 / scale, |a| rpc.call_wait(a, T)),
        "us",
    ));

    // 100,000 calls queued at once, sync backend, one worker.
    let n = 100_000 / scale;
    out.push(Figure::new(
        "rpc_pipelined_calls_per_s",
        flood(|a, cb| rpc.call(a, cb), n),
        "calls/s",
    ));
    rpc.join(T).expect("worker exits");

    // The same through the async backend.
    let rpc = spawn("figures_echo_async", Backend::Async);
    rpc.call_wait(vec![1], T).expect("warm-up");
    out.push(Figure::new(
        "rpc_async_calls_per_s",
        flood(|a, cb| rpc.call(a, cb), n),
        "calls/s",
    ));
    rpc.join(T).expect("worker exits");

    // A pool of two workers, 100,000 trivial jobs: with up to 512 calls in
    // flight per worker (pipelined), and with the default load of 2.
    for (name, load) in [
        ("pool2_jobs_per_s", 512),
        ("pool2_default_load_jobs_per_s", 2),
    ] {
        let pool = Pool::builder(Worker::current_exe(), "figures_echo")
            .max(2)
            .idle(2)
            .load(load)
            .build()
            .expect("start a pool");
        for _ in 0..100 {
            pool.call_wait(vec![1], T).expect("warm-up");
        }
        if load == 2 {
            // Sequential round trips through the pool, beside rpc_sync's
            // through one handle.
            out.push(Figure::new(
                "pool2_sync_rtt_us",
                sync_rtt_us(20_000 / scale, |a| pool.call_wait(a, T)),
                "us",
            ));
        }
        out.push(Figure::new(
            name,
            flood(|a, cb| pool.call(a, cb), n),
            "jobs/s",
        ));
        pool.join(T).expect("pool finishes");
    }
    out
}
