//! One typed worker: typed results and the function's own errors, events
//! attributed to their calls, and `serve_if_worker` refused after a spawn.

use std::collections::HashMap;
use std::sync::Arc;

use aemp::rpc::{self, CallError, CallId, Error, Event, Worker};
use parking_lot::Mutex;

use crate::rpc_support::typed::{
    DivError, Job, Step, T_DIV, T_DIV_CBOR, T_DIV_WRONG, T_JOB, T_SPAWN_FIRST,
};
use crate::T;

pub fn typed_results_and_function_errors() {
    for f in [T_DIV, T_DIV_CBOR] {
        let rpc = f
            .rpc(Worker::current_exe())
            .on_event(|_| {})
            .spawn()
            .unwrap();
        // `Ok` arrives as the result, typed.
        let q: i64 = rpc.call_wait((7, 2), T).unwrap();
        assert_eq!(q, 3);
        // The function's `Err` arrives as such: a `DivError`, not a string.
        assert_eq!(
            rpc.call_wait((1, 0), T),
            Err(CallError::Failed(DivError::ByZero))
        );
        assert_eq!(
            rpc.call_wait((i64::MIN, -1), T),
            Err(CallError::Failed(DivError::Overflow { dividend: i64::MIN }))
        );
        // A returned error does not end the worker.
        assert_eq!(rpc.call_wait((-9, 3), T), Ok(-3));
        assert!(rpc.error().is_none());
        rpc.join(T).unwrap();
    }
    // A parent that declared the function with other types is refused.
    let rpc = T_DIV_WRONG.rpc(Worker::current_exe()).spawn().unwrap();
    match rpc.call_wait("7".to_string(), T) {
        Err(CallError::Rpc(Error::Refused { message, .. })) => {
            assert!(message.contains("fn((i64, i64))"), "{message}");
            assert!(message.contains("fn(alloc::string::String)"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let _ = rpc.join(T);
    // A failure of the call itself is the other variant.
    let rpc = T_JOB.rpc(Worker::current_exe()).spawn().unwrap();
    let crash = Job {
        job: 1,
        steps: 0,
        ms: 0,
        crash: true,
    };
    match rpc.call_wait(crash, T) {
        Err(CallError::Rpc(Error::WorkerDied { status, .. })) => {
            assert!(status.contains("exit status: 7"), "{status}")
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    let _ = rpc.join(T);
}

/// An event, and which handler got it.
type Seen = (&'static str, Event<Step>);

pub fn typed_events_attributed_to_their_calls() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s = seen.clone();
    let rpc = T_JOB
        .rpc(Worker::current_exe())
        .on_event(move |ev| s.lock().push(("builder", ev)))
        .spawn()
        .unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut calls: HashMap<CallId, u32> = HashMap::new();
    for job in 1..=3 {
        let (tx, seen, s) = (tx.clone(), seen.clone(), seen.clone());
        let args = Job {
            job,
            steps: job + 1,
            ms: 0,
            crash: false,
        };
        // Tells how many of its events had arrived when the result came.
        let done = move |r| {
            let events = seen
                .lock()
                .iter()
                .filter(|(_, e)| e.value.job == job)
                .count();
            tx.send((job, r, events)).unwrap()
        };
        let id = if job == 2 {
            // This call's events go to its own handler only.
            rpc.call_with_events(args, move |ev| s.lock().push(("call 2", ev)), done)
        } else {
            rpc.call(args, done)
        };
        calls.insert(id, job);
    }
    assert_eq!(calls.len(), 3, "distinct call ids");
    for _ in 0..3 {
        let (job, r, events) = rx.recv_timeout(T).unwrap();
        assert_eq!(r, Ok(rpc.pid()), "job {job}");
        assert_eq!(events, job as usize + 1, "job {job}: its events came first");
    }
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 2 + 3 + 4, "{seen:?}");
    for (handler, ev) in &seen {
        let job = calls[&ev.call];
        assert_eq!(ev.value.job, job, "event tagged with its own call: {ev:?}");
        assert_eq!(*handler == "call 2", job == 2, "{handler}: {ev:?}");
        assert_eq!((ev.pid, ev.worker), (rpc.pid(), 0));
    }
    // Each call's events arrive in the order they were sent.
    for job in 1..=3 {
        let ns: Vec<u32> = seen
            .iter()
            .filter(|(_, ev)| ev.value.job == job)
            .map(|(_, ev)| ev.value.n)
            .collect();
        assert_eq!(ns, (1..=job + 1).collect::<Vec<_>>());
    }
    rpc.join(T).unwrap();

    // Without any handler, a typed event is reported to on_error.
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    let rpc = T_DIV
        .rpc(Worker::current_exe())
        .on_error(move |err| e.lock().push(err.clone()))
        .spawn()
        .unwrap();
    assert_eq!(rpc.call_wait((4, 2), T), Ok(2));
    rpc.join(T).unwrap();
    let errors = errors.lock();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(matches!(errors[0], Error::UnhandledEvent { .. }));
}

pub fn serve_if_worker_after_spawn_is_refused() {
    // A worker started with RPC_TEST_SPAWN_FIRST tries to start a worker
    // before serving (as a program that spawns before `serve_if_worker`
    // would): refused, so no chain of workers; it then serves normally.
    let rpc = T_SPAWN_FIRST
        .rpc(Worker::current_exe().env("RPC_TEST_SPAWN_FIRST", "1"))
        .spawn()
        .unwrap();
    let said = rpc.call_wait((), T).unwrap();
    assert!(said.starts_with("LateServe"), "{said}");
    assert!(said.contains("before calling serve_if_worker"), "{said}");
    rpc.join(T).unwrap();
    // This process has started workers: serving now is refused.
    let err = rpc::serve_if_worker().unwrap_err();
    assert!(matches!(err, Error::LateServe { .. }), "{err}");
    assert!(err
        .to_string()
        .contains("after this process started a worker"));
}
