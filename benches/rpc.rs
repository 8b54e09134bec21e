//! Criterion benchmarks of process RPC: a sequential round trip, a batch of
//! pipelined calls, and a pool of two workers.
//!
//! ```text
//! cargo bench --bench rpc
//! ```
//!
//! The bench program is its own worker: `main` calls
//! `aemp::rpc::serve_if_worker()` before Criterion starts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aemp::rpc::{self, Backend, Done, Pool, Raw, Rpc, Worker};
use criterion::{Criterion, Throughput};

const T: Duration = Duration::from_secs(60);
const BATCH: usize = 1000;

/// Sends `BATCH` calls at once through `call` and waits for every answer.
fn batch(call: impl Fn(Vec<u8>, Box<dyn FnOnce(Result<Vec<u8>, rpc::Error>) + Send>)) {
    let left = Arc::new(AtomicUsize::new(BATCH));
    let (tx, rx) = crossbeam_channel::bounded(1);
    for i in 0..BATCH {
        let (left, tx) = (left.clone(), tx.clone());
        call(
            (i as u32).to_le_bytes().to_vec(),
            Box::new(move |r| {
                r.expect("call");
                if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    let _ = tx.send(());
                }
            }),
        );
    }
    rx.recv_timeout(T).expect("all answered");
}

fn benches(c: &mut Criterion) {
    let sync = Rpc::builder(Worker::current_exe(), "bench_echo")
        .spawn()
        .expect("worker");
    c.bench_function("rpc_sync_round_trip", |b| {
        b.iter(|| sync.call_wait(vec![1, 2, 3, 4], T).expect("call"))
    });
    let mut g = c.benchmark_group("rpc_pipelined");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("sync_1000_calls", |b| {
        b.iter(|| batch(|a, cb| sync.call(a, cb)))
    });
    let asyn = Rpc::builder(Worker::current_exe(), "bench_echo_async")
        .backend(Backend::Async)
        .spawn()
        .expect("worker");
    g.bench_function("async_1000_calls", |b| {
        b.iter(|| batch(|a, cb| asyn.call(a, cb)))
    });
    let pool = Pool::builder(Worker::current_exe(), "bench_echo")
        .max(2)
        .idle(2)
        .load(512)
        .build()
        .expect("pool");
    g.bench_function("pool2_1000_jobs", |b| {
        b.iter(|| batch(|a, cb| pool.call(a, cb)))
    });
    g.finish();
    sync.join(T).expect("exit");
    asyn.join(T).expect("exit");
    pool.join(T).expect("exit");
}

fn main() {
    rpc::register_sync("bench_echo", Raw, |v: Vec<u8>| v);
    rpc::register_async("bench_echo_async", Raw, |d: Done<Raw>, v: Vec<u8>| {
        d.done(v)
    });
    rpc::serve_if_worker().expect("serve_if_worker comes first in main");
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
