//! A pool of 2 workers squaring 10,000 numbers, with a progress bar on
//! standard error.
//!
//! ```text
//! cargo run --release --example pool_squares
//! ```

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aemp::rpc::{self, Json, Pool, Worker};
use serde_json::{json, Value};

const JOBS: usize = 10_000;

fn progress(done: usize) {
    let width = 40;
    let filled = done * width / JOBS;
    eprint!(
        "\r[{}{}] {:>5}/{JOBS}",
        "#".repeat(filled),
        " ".repeat(width - filled),
        done
    );
    let _ = std::io::stderr().flush();
}

fn main() {
    rpc::register_sync("square", Json::new(), |v: Value| {
        let n = v.as_u64().unwrap_or(0);
        json!(n * n)
    });
    rpc::serve_if_worker().expect("serve_if_worker comes first in main");

    env_logger::init();
    let pool = Pool::builder(Worker::current_exe(), "square")
        .serialiser(Json::new())
        .max(2)
        .load(16)
        .on_error(|e| eprintln!("\nworker failed: {e}"))
        .build()
        .expect("start the pool");

    let t0 = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let sum = Arc::new(AtomicU64::new(0));
    for n in 0..JOBS as u64 {
        let (done, sum) = (done.clone(), sum.clone());
        pool.call(json!(n), move |r| {
            sum.fetch_add(
                r.expect("a square").as_u64().unwrap_or(0),
                Ordering::Relaxed,
            );
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            if d % 100 == 0 || d == JOBS {
                progress(d);
            }
        });
    }
    // Finish the queue, stop both workers.
    pool.join(Duration::from_secs(60))
        .expect("the pool finishes");
    eprintln!();
    let n = JOBS as u64 - 1;
    assert_eq!(sum.load(Ordering::Relaxed), n * (n + 1) * (2 * n + 1) / 6);
    println!(
        "sum of squares of 0..{JOBS}: {} ({:.0} jobs/s)",
        sum.load(Ordering::Relaxed),
        JOBS as f64 / t0.elapsed().as_secs_f64()
    );
}
