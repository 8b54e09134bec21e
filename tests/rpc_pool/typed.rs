//! Typed pools: events name their call and worker; calls queued behind a
//! crashing call on the same worker go to another worker; the default
//! size.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aemp::rpc::{self, CallError, CallId, Error, Event, Worker};
use parking_lot::Mutex;

use crate::rpc_support::typed::{Job, Step, T_DIV, T_JOB};
use crate::T;

fn job(job: u32, steps: u32, ms: u64, crash: bool) -> Job {
    Job {
        job,
        steps,
        ms,
        crash,
    }
}

pub fn typed_pool_events_name_call_and_worker() {
    let seen: Arc<Mutex<Vec<Event<Step>>>> = Arc::default();
    let s = seen.clone();
    let pool = T_JOB
        .pool(Worker::current_exe())
        .max(2)
        .idle(2)
        .load(1)
        .start(Duration::ZERO)
        .on_event(move |ev| s.lock().push(ev))
        .build()
        .unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut calls: HashMap<CallId, u32> = HashMap::new();
    for j in 1..=6 {
        let tx = tx.clone();
        let id = pool.call(job(j, 3, 20, false), move |r| tx.send((j, r)).unwrap());
        calls.insert(id, j);
    }
    let mut pid_of_job = HashMap::new();
    for _ in 0..6 {
        let (j, r) = rx.recv_timeout(T).unwrap();
        pid_of_job.insert(j, r.unwrap());
    }
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 18, "{seen:?}");
    let mut worker_of_pid = HashMap::new();
    for ev in &seen {
        let j = calls[&ev.call];
        assert_eq!(ev.value.job, j, "tagged with its own call: {ev:?}");
        assert_eq!(ev.pid, pid_of_job[&j], "tagged with the worker that ran it");
        assert!([1, 2].contains(&ev.worker), "{ev:?}");
        let w = *worker_of_pid.entry(ev.pid).or_insert(ev.worker);
        assert_eq!(w, ev.worker, "one number per worker: {ev:?}");
    }
    assert_eq!(worker_of_pid.len(), 2, "both workers ran jobs");
    pool.join(T).unwrap();
}

pub fn typed_pool_redispatches_calls_queued_behind_a_crash() {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    let seen: Arc<Mutex<Vec<Event<Step>>>> = Arc::default();
    let s = seen.clone();
    // One worker at a time, three calls per worker: the crashing call runs
    // first, two wait behind it on the same worker.
    let pool = T_JOB
        .pool(Worker::current_exe())
        .max(1)
        .load(3)
        .start(Duration::ZERO)
        .on_event(move |ev| s.lock().push(ev))
        .on_error(move |err| e.lock().push(err.clone()))
        .build()
        .unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let jobs = [
        job(1, 1, 200, true),
        job(2, 1, 0, false),
        job(3, 1, 0, false),
    ];
    for j in jobs {
        let (tx, n) = (tx.clone(), j.job);
        pool.call(j, move |r| tx.send((n, r)).unwrap());
    }
    let mut results = HashMap::new();
    for _ in 0..3 {
        let (j, r) = rx.recv_timeout(T).unwrap();
        results.insert(j, r);
    }
    // The running call fails with what happened to its worker.
    match &results[&1] {
        Err(CallError::Rpc(Error::WorkerDied { status, .. })) => {
            assert!(status.contains("exit status: 7"), "{status}")
        }
        other => panic!("the crashing call: {other:?}"),
    }
    // The two queued behind it ran on another worker.
    let crashed = seen
        .lock()
        .iter()
        .find(|e| e.value.job == 1)
        .unwrap()
        .clone();
    for j in [2, 3] {
        let pid = results[&j].clone().unwrap();
        assert_ne!(pid, crashed.pid, "job {j} ran on another worker");
        let ev = seen
            .lock()
            .iter()
            .find(|e| e.value.job == j)
            .unwrap()
            .clone();
        assert_eq!(ev.pid, pid);
        assert_ne!(ev.worker, crashed.worker, "job {j}: {ev:?}");
    }
    assert_eq!(errors.lock().len(), 1, "on_error once: {:?}", errors.lock());
    pool.join(T).unwrap();
}

pub fn typed_pool_crash_right_after_a_result_runs_no_call_twice() {
    // Three calls on one worker: the first completes, the second kills the
    // worker at once, the third waits. The first's result must not be lost
    // with the worker (else the pool would take the second for not started
    // and run it again, killing another worker).
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    let pool = T_JOB
        .pool(Worker::current_exe())
        .max(1)
        .load(3)
        .start(Duration::ZERO)
        .on_error(move |err| e.lock().push(err.clone()))
        .build()
        .unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    for j in [job(1, 0, 0, false), job(2, 0, 0, true), job(3, 0, 0, false)] {
        let (tx, n) = (tx.clone(), j.job);
        pool.call(j, move |r| tx.send((n, r)).unwrap());
    }
    let mut results = HashMap::new();
    for _ in 0..3 {
        let (j, r) = rx.recv_timeout(T).unwrap();
        results.insert(j, r);
    }
    let first = results[&1].clone().expect("the first call completed");
    assert!(
        matches!(results[&2], Err(CallError::Rpc(Error::WorkerDied { .. }))),
        "{:?}",
        results[&2]
    );
    let third = results[&3].clone().expect("the third call ran elsewhere");
    assert_ne!(first, third, "on another worker");
    assert_eq!(
        errors.lock().len(),
        1,
        "one worker died: {:?}",
        errors.lock()
    );
    pool.join(T).unwrap();
}

pub fn typed_pool_default_size_and_errors() {
    let pool = T_DIV.pool(Worker::current_exe()).build().unwrap();
    assert_eq!(pool.max(), rpc::ncpu(1));
    assert_eq!(
        pool.max(),
        std::thread::available_parallelism().unwrap().get()
    );
    let results: Vec<_> = [(9, 3), (1, 0)]
        .into_iter()
        .map(|args| pool.call_wait(args, T))
        .collect();
    assert_eq!(results[0], Ok(3));
    assert!(
        matches!(results[1], Err(CallError::Failed(_))),
        "{results:?}"
    );
    let pids: HashSet<u32> = pool.pids().into_iter().collect();
    assert!(!pids.is_empty());
    pool.join(T).unwrap();
}
