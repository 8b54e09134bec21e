//! Pools of workers: acceptance items 143–148 of §8 mapped to Rust, plus a
//! worker killed with SIGKILL or panicking inside a pool. A `harness = false`
//! program: this binary is also the worker (see `rpc_support`).

mod rpc_support;
#[path = "rpc_pool/typed.rs"]
mod typed;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aemp::rpc::{self, Error, Json, Pool, PoolBuilder, Worker};
use parking_lot::Mutex;
use rpc_support::{kill, wait_until};
use serde_json::{json, Value};

pub(crate) const T: Duration = Duration::from_secs(20);

fn main() {
    rpc_support::register_workers();
    rpc::serve_if_worker().expect("serve_if_worker comes first in main");
    rpc_support::run(&[
        (
            "pool_max2_load1_never_more_than_2_143",
            pool_max2_load1_never_more_than_2_143,
        ),
        (
            "pool_idle_workers_and_stop_144",
            pool_idle_workers_and_stop_144,
        ),
        ("pool_start_gap_145", pool_start_gap_145),
        ("pool_retire_146", pool_retire_146),
        (
            "pool_drop_finishes_queue_then_on_destroy_147",
            pool_drop_finishes_queue_then_on_destroy_147,
        ),
        ("ncpu_148", ncpu_148),
        (
            "pool_kill9_worker_is_replaced",
            pool_kill9_worker_is_replaced,
        ),
        (
            "pool_panic_fails_only_that_call",
            pool_panic_fails_only_that_call,
        ),
        ("pool_least_loaded_dispatch", pool_least_loaded_dispatch),
        (
            "pool_unstartable_worker_fails_calls",
            pool_unstartable_worker_fails_calls,
        ),
        ("pool_bad_options", pool_bad_options),
        (
            "pool_panic_redispatches_calls_queued_behind_it",
            pool_panic_redispatches_calls_queued_behind_it,
        ),
        (
            "pool_refusing_worker_fails_all_its_calls",
            pool_refusing_worker_fails_all_its_calls,
        ),
        (
            "typed_pool_events_name_call_and_worker",
            typed::typed_pool_events_name_call_and_worker,
        ),
        (
            "typed_pool_redispatches_calls_queued_behind_a_crash",
            typed::typed_pool_redispatches_calls_queued_behind_a_crash,
        ),
        (
            "typed_pool_crash_right_after_a_result_runs_no_call_twice",
            typed::typed_pool_crash_right_after_a_result_runs_no_call_twice,
        ),
        (
            "typed_pool_default_size_and_errors",
            typed::typed_pool_default_size_and_errors,
        ),
    ]);
}

fn pool(function: &str) -> PoolBuilder<Json> {
    Pool::builder(Worker::current_exe(), function).serialiser(Json::new())
}

/// Runs `jobs` calls and collects results in completion order.
fn run_all(pool: &Pool<Json>, jobs: Vec<Value>) -> Vec<Result<Value, Error>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let n = jobs.len();
    for (i, v) in jobs.into_iter().enumerate() {
        let tx = tx.clone();
        pool.call(v, move |r| tx.send((i, r)).unwrap());
    }
    let mut out: Vec<Option<Result<Value, Error>>> = (0..n).map(|_| None).collect();
    for _ in 0..n {
        let (i, r) = rx.recv_timeout(T).expect("every job answers");
        assert!(out[i].is_none(), "callback {i} ran twice");
        out[i] = Some(r);
    }
    out.into_iter().map(Option::unwrap).collect()
}

/// The largest number of overlapping `[start, end]` intervals.
fn max_overlap(intervals: &[(u64, u64)]) -> usize {
    let mut ev: Vec<(u64, i32)> = intervals
        .iter()
        .flat_map(|&(s, e)| [(s, 1), (e, -1)])
        .collect();
    ev.sort_by_key(|&(t, d)| (t, d)); // ends before starts at equal times
    let (mut cur, mut best) = (0i32, 0i32);
    for (_, d) in ev {
        cur += d;
        best = best.max(cur);
    }
    best as usize
}

fn pool_max2_load1_never_more_than_2_143() {
    let p = pool("sleep")
        .max(2)
        .load(1)
        .start(Duration::ZERO)
        .build()
        .unwrap();
    let results = run_all(&p, (0..10).map(|_| json!(40)).collect());
    let spans: Vec<(u64, u64)> = results
        .iter()
        .map(|r| {
            let v = r.as_ref().unwrap();
            (v[1].as_u64().unwrap(), v[2].as_u64().unwrap())
        })
        .collect();
    assert_eq!(spans.len(), 10);
    assert!(max_overlap(&spans) <= 2, "at most 2 concurrent: {spans:?}");
    let pids: HashSet<u64> = results
        .iter()
        .map(|r| r.as_ref().unwrap()[0].as_u64().unwrap())
        .collect();
    assert!(pids.len() <= 2, "{pids:?}");
    p.join(T).unwrap();
}

fn pool_idle_workers_and_stop_144() {
    let p = pool("sleep")
        .max(4)
        .idle(2)
        .load(1)
        .start(Duration::ZERO)
        .stop(Duration::from_millis(300))
        .build()
        .unwrap();
    assert_eq!(p.workers(), 2, "idle workers exist right after creation");
    let results = run_all(&p, (0..4).map(|_| json!(300)).collect());
    let pids: HashSet<u64> = results
        .iter()
        .map(|r| r.as_ref().unwrap()[0].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 4, "grew to max under load");
    // Extra workers stop after `stop` of idleness; `idle` stay.
    assert!(
        wait_until(Duration::from_secs(5), || p.workers() == 2),
        "{}",
        p.workers()
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(p.workers(), 2, "never below idle");
    p.join(T).unwrap();
}

fn pool_start_gap_145() {
    let p = pool("sleep")
        .max(3)
        .load(1)
        .start(Duration::from_millis(400))
        .build()
        .unwrap();
    let results = run_all(&p, (0..3).map(|_| json!(1200)).collect());
    let mut starts: Vec<u64> = results
        .iter()
        .map(|r| r.as_ref().unwrap()[1].as_u64().unwrap())
        .collect();
    starts.sort_unstable();
    let pids: HashSet<u64> = results
        .iter()
        .map(|r| r.as_ref().unwrap()[0].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    for w in starts.windows(2) {
        assert!(
            w[1] - w[0] >= 240_000,
            "workers started {} µs apart",
            w[1] - w[0]
        );
    }
    p.join(T).unwrap();
}

fn pool_retire_146() {
    let p = pool("retire_then_pid")
        .max(1)
        .load(1)
        .start(Duration::ZERO)
        .build()
        .unwrap();
    let a = p.call_wait(json!(null), T).unwrap();
    let b = p.call_wait(json!(null), T).unwrap();
    let c = p.call_wait(json!(null), T).unwrap();
    assert_ne!(a, b, "a retired worker gets no new jobs");
    assert_ne!(b, c);
    p.join(T).unwrap();

    // A retiring worker finishes the jobs it already has.
    let p = pool("retire_then_pid")
        .max(1)
        .load(3)
        .start(Duration::ZERO)
        .build()
        .unwrap();
    let results = run_all(&p, vec![json!(1), json!(2), json!(3)]);
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    p.join(T).unwrap();
}

fn pool_drop_finishes_queue_then_on_destroy_147() {
    let done = Arc::new(AtomicUsize::new(0));
    let destroyed = Arc::new(Mutex::new(None));
    let (d2, dest2) = (done.clone(), destroyed.clone());
    let p = pool("count_sync")
        .max(2)
        .on_destroy(move || *dest2.lock() = Some(d2.load(Ordering::SeqCst)))
        .build()
        .unwrap();
    for i in 0..50 {
        let done = done.clone();
        p.call(json!(i), move |r| {
            assert_eq!(r.unwrap(), json!(i));
            done.fetch_add(1, Ordering::SeqCst);
        });
    }
    let clone = p.clone();
    drop(clone);
    p.join(T).unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 50);
    assert_eq!(
        *destroyed.lock(),
        Some(50),
        "on_destroy after all jobs, once"
    );
    assert!(rpc_support::children().is_empty(), "all children exited");
}

fn ncpu_148() {
    let n = rpc::ncpu(7);
    assert!(n >= 1);
    let (cores, eus) = rpc::ncpu_eus(7);
    assert_eq!(cores, n);
    assert!(eus >= cores);
    assert_eq!(eus, std::thread::available_parallelism().unwrap().get());
    // A thread pinned to one CPU (as under `taskset 1` or a one-CPU
    // container) counts one: the affinity mask is respected.
    let pinned = std::thread::spawn(|| {
        // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET fill it and
        // sched_setaffinity(0, ..) applies it to the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_ZERO(&mut set);
            libc::CPU_SET(0, &mut set);
            assert_eq!(
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
                0
            );
        }
        rpc::ncpu_eus(7)
    });
    assert_eq!(pinned.join().unwrap(), (1, 1));
}

fn pool_kill9_worker_is_replaced() {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    let p = pool("sleep")
        .max(2)
        .load(1)
        .start(Duration::ZERO)
        .on_error(move |err| e.lock().push(err.to_string()))
        .build()
        .unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    // Two long jobs occupy both workers; four short ones queue behind them.
    for ms in [3000, 3000, 10, 10, 10, 10] {
        let tx = tx.clone();
        p.call(json!(ms), move |r| tx.send((ms, r)).unwrap());
    }
    assert!(wait_until(T, || p.workers() == 2 && p.queued() == 4));
    std::thread::sleep(Duration::from_millis(100));
    let victim = p.pids()[0];
    let t0 = Instant::now();
    kill(victim, libc::SIGKILL);
    let mut failed = Vec::new();
    let mut ok = 0;
    for _ in 0..6 {
        let (ms, r) = rx.recv_timeout(T).unwrap();
        match r {
            Ok(v) => {
                assert_ne!(v[0], json!(victim));
                ok += 1;
            }
            Err(err) => failed.push((ms, err)),
        }
    }
    assert_eq!(failed.len(), 1, "only the in-flight call fails: {failed:?}");
    assert_eq!(failed[0].0, 3000);
    assert!(
        failed[0].1.to_string().contains("signal: 9"),
        "{}",
        failed[0].1
    );
    assert_eq!(ok, 5);
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(errors.lock().len(), 1, "on_error once: {:?}", errors.lock());
    assert!(!p.pids().contains(&victim), "the dead worker left the pool");
    // The pool keeps serving.
    assert!(p.call_wait(json!(1), T).is_ok());
    p.join(T).unwrap();
}

fn pool_panic_fails_only_that_call() {
    let p = pool("panic")
        .max(2)
        .load(1)
        .start(Duration::ZERO)
        .build()
        .unwrap();
    let results = run_all(
        &p,
        vec![
            json!(1),
            json!("boom"),
            json!(2),
            json!(3),
            json!(4),
            json!(5),
        ],
    );
    let errs: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errs.len(), 1, "{results:?}");
    assert!(errs[0].to_string().contains("boom 42"));
    assert_eq!(results[5].as_ref().unwrap(), &json!(5));
    p.join(T).unwrap();
}

fn pool_least_loaded_dispatch() {
    // Three workers, load 2: six long jobs land two per worker.
    let p = pool("sleep")
        .max(3)
        .idle(3)
        .load(2)
        .start(Duration::ZERO)
        .build()
        .unwrap();
    let results = run_all(&p, (0..6).map(|_| json!(200)).collect());
    let mut per_pid = std::collections::HashMap::new();
    for r in &results {
        *per_pid
            .entry(r.as_ref().unwrap()[0].as_u64().unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(per_pid.len(), 3, "{per_pid:?}");
    assert!(per_pid.values().all(|&n| n == 2), "{per_pid:?}");
    p.join(T).unwrap();
}

fn pool_unstartable_worker_fails_calls() {
    let reported = Arc::new(AtomicUsize::new(0));
    let r = reported.clone();
    let p = Pool::builder(Worker::program("/nonexistent/worker"), "f")
        .on_error(move |e| {
            assert!(matches!(e, Error::Spawn { .. }), "{e}");
            r.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let err = p.call_wait(vec![1], T).unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err}");
    assert_eq!(reported.load(Ordering::SeqCst), 1);
    p.join(T).unwrap();
}

fn pool_bad_options() {
    let err = pool("echo").max(0).build().err().unwrap();
    assert!(err.to_string().contains("max"), "{err}");
    let err = pool("echo").load(0).build().err().unwrap();
    assert!(err.to_string().contains("load"), "{err}");
}

fn pool_panic_redispatches_calls_queued_behind_it() {
    // One worker with three calls: the first panics; the two behind it had
    // not started, and complete on the replacement worker.
    let p = pool("panic")
        .max(1)
        .load(3)
        .start(Duration::ZERO)
        .on_error(|_| {})
        .build()
        .unwrap();
    let results = run_all(&p, vec![json!("boom"), json!(2), json!(3)]);
    let err = results[0].as_ref().unwrap_err();
    assert!(matches!(err, Error::Panicked { .. }), "{err}");
    assert_eq!(results[1].as_ref().unwrap(), &json!(2));
    assert_eq!(results[2].as_ref().unwrap(), &json!(3));
    p.join(T).unwrap();
}

fn pool_refusing_worker_fails_all_its_calls() {
    // A worker that refuses to serve would refuse again: its calls are not
    // sent to another worker, they all fail with the refusal.
    let p = pool("no_such_function")
        .max(1)
        .load(3)
        .start(Duration::ZERO)
        .on_error(|_| {})
        .build()
        .unwrap();
    let results = run_all(&p, vec![json!(1), json!(2), json!(3)]);
    for r in &results {
        let err = r.as_ref().unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{err}");
    }
    p.join(T).unwrap();
}
