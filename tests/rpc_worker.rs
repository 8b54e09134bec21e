//! One worker process behind an `Rpc` handle: acceptance items 128–142 of
//! §8 mapped to Rust, plus crashes, panics, garbage, big payloads and 1,000
//! concurrent async calls. A `harness = false` program: this binary is also
//! the worker (see `rpc_support`).

mod rpc_support;
#[path = "rpc_worker/typed.rs"]
mod typed;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aemp::rpc::{self, Backend, Cbor, Error, Json, Raw, Rpc, Strings, Worker};
use parking_lot::Mutex;
use rpc_support::{kill, Point};
use serde_json::{json, Value};

pub(crate) const T: Duration = Duration::from_secs(20);

fn main() {
    rpc_support::register_workers();
    rpc::serve_if_worker().expect("serve_if_worker comes first in main");
    rpc_support::run(&[
        (
            "worker_call_data_flows_both_ways_128",
            worker_call_data_flows_both_ways_128,
        ),
        (
            "init_args_in_order_and_extra_fd_129",
            init_args_in_order_and_extra_fd_129,
        ),
        (
            "worker_template_starts_many_alike_130",
            worker_template_starts_many_alike_130,
        ),
        (
            "dropped_before_any_call_child_exits_131",
            dropped_before_any_call_child_exits_131,
        ),
        (
            "unknown_function_or_failing_init_refused_132",
            unknown_function_or_failing_init_refused_132,
        ),
        ("pid_is_the_childs_133", pid_is_the_childs_133),
        ("sync_results_in_order_134", sync_results_in_order_134),
        (
            "async_out_of_order_events_in_emission_order_135",
            async_out_of_order_events_in_emission_order_135,
        ),
        (
            "drop_delivers_all_results_then_on_destroy_136",
            drop_delivers_all_results_then_on_destroy_136,
        ),
        ("child_dies_mid_request_137", child_dies_mid_request_137),
        (
            "event_without_on_event_is_an_error_138",
            event_without_on_event_is_an_error_138,
        ),
        (
            "init_runs_first_with_its_args_139",
            init_runs_first_with_its_args_139,
        ),
        ("serialisers_round_trip_140", serialisers_round_trip_140),
        (
            "payloads_over_64k_and_mib_141",
            payloads_over_64k_and_mib_141,
        ),
        ("async_done_override_142", async_done_override_142),
        (
            "kill9_busy_worker_errors_pending_calls",
            kill9_busy_worker_errors_pending_calls,
        ),
        (
            "worker_function_panic_travels",
            worker_function_panic_travels,
        ),
        (
            "garbage_on_channel_is_a_protocol_error",
            garbage_on_channel_is_a_protocol_error,
        ),
        (
            "bad_frame_during_call_wait_is_a_protocol_error",
            bad_frame_during_call_wait_is_a_protocol_error,
        ),
        (
            "call_wait_from_many_threads_beside_calls",
            call_wait_from_many_threads_beside_calls,
        ),
        ("program_that_is_not_a_worker", program_that_is_not_a_worker),
        (
            "missing_program_is_a_spawn_error",
            missing_program_is_a_spawn_error,
        ),
        (
            "async_1000_concurrent_calls_out_of_order",
            async_1000_concurrent_calls_out_of_order,
        ),
        (
            "async_dropped_done_is_abandoned",
            async_dropped_done_is_abandoned,
        ),
        (
            "call_wait_times_out_without_hanging",
            call_wait_times_out_without_hanging,
        ),
        (
            "mismatched_serialiser_or_backend_refused",
            mismatched_serialiser_or_backend_refused,
        ),
        (
            "event_type_and_outside_worker_errors",
            event_type_and_outside_worker_errors,
        ),
        ("round_trip_100_mib", round_trip_100_mib),
        (
            "typed_results_and_function_errors",
            typed::typed_results_and_function_errors,
        ),
        (
            "typed_events_attributed_to_their_calls",
            typed::typed_events_attributed_to_their_calls,
        ),
        (
            "serve_if_worker_after_spawn_is_refused",
            typed::serve_if_worker_after_spawn_is_refused,
        ),
    ]);
}

fn json_rpc(function: &str) -> rpc::RpcBuilder<Json> {
    Rpc::builder(Worker::current_exe(), function).serialiser(Json::new())
}

/// Counts calls of a hook.
fn counter() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let c = Arc::new(AtomicUsize::new(0));
    (c.clone(), c)
}

fn worker_call_data_flows_both_ways_128() {
    let rpc = Rpc::builder(Worker::current_exe(), "reverse")
        .spawn()
        .unwrap();
    assert_eq!(
        rpc.call_wait(b"abc\0\xff".to_vec(), T).unwrap(),
        b"\xff\0cba".to_vec()
    );
    assert_eq!(rpc.call_wait(Vec::new(), T).unwrap(), Vec::<u8>::new());
    rpc.join(T).unwrap();
    // The same through "any executable that serves workers", by path.
    let exe = std::env::current_exe().unwrap();
    let rpc = Rpc::builder(Worker::program(exe), "reverse")
        .spawn()
        .unwrap();
    assert_eq!(rpc.call_wait(b"xy".to_vec(), T).unwrap(), b"yx".to_vec());
    rpc.join(T).unwrap();
}

fn init_args_in_order_and_extra_fd_129() {
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let rpc = Rpc::builder(Worker::current_exe().fd(theirs.into()), "whoami")
        .serialiser(Json::new())
        .init(
            "record_init",
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()],
        )
        .spawn()
        .unwrap();
    let v = rpc.call_wait(json!(null), T).unwrap();
    assert_eq!(v["init"], json!(["a", "b", "c"]));
    let mut got = String::new();
    ours.set_read_timeout(Some(T)).unwrap();
    rpc.join(T).unwrap();
    ours.read_to_string(&mut got).unwrap();
    assert_eq!(got, "hello through the extra fd");
}

fn worker_template_starts_many_alike_130() {
    let template = Worker::current_exe()
        .arg("--role")
        .arg("worker")
        .env("RPC_TEST_ENV", "cloned");
    let a = Rpc::builder(template.clone(), "whoami")
        .serialiser(Json::new())
        .spawn()
        .unwrap();
    let b = Rpc::builder(template, "whoami")
        .serialiser(Json::new())
        .spawn()
        .unwrap();
    let (va, vb) = (
        a.call_wait(json!(0), T).unwrap(),
        b.call_wait(json!(0), T).unwrap(),
    );
    for v in [&va, &vb] {
        assert_eq!(v["args"], json!(["--role", "worker"]));
        assert_eq!(v["env"], json!("cloned"));
        assert_eq!(v["calls_before"], json!(0), "state is per process");
        // A fresh program image: its main thread and the channel's writer,
        // none of the parent's (many) threads.
        assert_eq!(v["threads"], json!("2"), "{v}");
    }
    assert_ne!(va["pid"], vb["pid"]);
    a.join(T).unwrap();
    b.join(T).unwrap();
}

fn dropped_before_any_call_child_exits_131() {
    let (destroyed, d) = counter();
    let (errors, e) = counter();
    let rpc = Rpc::builder(Worker::current_exe(), "echo")
        .on_destroy(move || {
            d.fetch_add(1, Ordering::SeqCst);
        })
        .on_error(move |_| {
            e.fetch_add(1, Ordering::SeqCst);
        })
        .spawn()
        .unwrap();
    let pid = rpc.pid();
    rpc.join(T).unwrap();
    assert_eq!(destroyed.load(Ordering::SeqCst), 1);
    assert_eq!(errors.load(Ordering::SeqCst), 0);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

fn unknown_function_or_failing_init_refused_132() {
    let (errors, e) = counter();
    let rpc = json_rpc("no_such_function")
        .on_error(move |_| {
            e.fetch_add(1, Ordering::SeqCst);
        })
        .spawn()
        .unwrap();
    let err = rpc.call_wait(json!(1), T).unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    assert!(err.to_string().contains("no_such_function"), "{err}");
    assert!(
        err.to_string().contains("whoami"),
        "lists registered names: {err}"
    );
    // Later calls fail at once with the same error.
    assert_eq!(rpc.call_wait(json!(2), T).unwrap_err(), err);
    assert_eq!(rpc.join(T).unwrap_err(), err);
    assert_eq!(errors.load(Ordering::SeqCst), 1);

    let rpc = json_rpc("whoami")
        .init("failing_init", vec![b"x".to_vec()])
        .spawn()
        .unwrap();
    let err = rpc.call_wait(json!(1), T).unwrap_err();
    assert!(
        err.to_string().contains("refusing with 1 argument(s)"),
        "{err}"
    );
    assert!(err.to_string().contains("failing_init"), "{err}");
    let _ = rpc.join(T);

    let rpc = json_rpc("whoami")
        .init("no_such_init", vec![])
        .spawn()
        .unwrap();
    let err = rpc.call_wait(json!(1), T).unwrap_err();
    assert!(err.to_string().contains("no_such_init"), "{err}");
    let _ = rpc.join(T);
}

fn pid_is_the_childs_133() {
    let rpc = json_rpc("pid").spawn().unwrap();
    assert_eq!(rpc.call_wait(json!(null), T).unwrap(), json!(rpc.pid()));
    assert_ne!(rpc.pid(), std::process::id());
    rpc.join(T).unwrap();
}

fn sync_results_in_order_134() {
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = log.clone();
    let rpc = json_rpc("count_sync")
        .on_event(move |ev| l.lock().push(ev.as_str().unwrap().to_string()))
        .spawn()
        .unwrap();
    for i in 0..6 {
        let l = log.clone();
        rpc.call(json!(i), move |r| {
            l.lock().push(format!("result {}", r.unwrap()))
        });
    }
    rpc.join(T).unwrap();
    let expect: Vec<String> = (0..6)
        .flat_map(|i| [format!("ev {i}"), format!("result {i}")])
        .collect();
    assert_eq!(*log.lock(), expect);
}

fn async_out_of_order_events_in_emission_order_135() {
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = log.clone();
    let rpc = json_rpc("after")
        .backend(Backend::Async)
        .on_event(move |ev| l.lock().push(ev.as_str().unwrap().to_string()))
        .spawn()
        .unwrap();
    for (ms, tag) in [(600, "a"), (50, "b"), (300, "c")] {
        let l = log.clone();
        rpc.call(json!([ms, tag]), move |r| {
            let v = r.unwrap();
            assert_eq!(v, json!(tag), "each callback gets its own result");
            l.lock().push(format!("result {tag}"));
        });
    }
    rpc.join(T).unwrap();
    let got = log.lock().clone();
    assert_eq!(
        got,
        [
            "start a", "start b", "start c", "end b", "result b", "end c", "result c", "end a",
            "result a"
        ]
    );
}

fn drop_delivers_all_results_then_on_destroy_136() {
    let results = Arc::new(Mutex::new(Vec::new()));
    let (destroyed, d) = counter();
    let r2 = results.clone();
    let rpc = json_rpc("count_sync")
        .on_event(|_| {})
        .on_destroy(move || {
            // Every result arrived before on_destroy.
            assert_eq!(r2.lock().len(), 100);
            d.fetch_add(1, Ordering::SeqCst);
        })
        .spawn()
        .unwrap();
    let pid = rpc.pid();
    for i in 0..100 {
        let r = results.clone();
        rpc.call(json!(i), move |v| r.lock().push(v.unwrap()));
    }
    drop(rpc); // no join: the worker finishes on its own
    assert!(rpc_support::wait_until(T, || destroyed
        .load(Ordering::SeqCst)
        == 1));
    assert_eq!(
        *results.lock(),
        (0..100).map(|i| json!(i)).collect::<Vec<_>>()
    );
    assert!(rpc_support::wait_until(T, || !std::path::Path::new(
        &format!("/proc/{pid}")
    )
    .exists()));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(destroyed.load(Ordering::SeqCst), 1);
}

fn child_dies_mid_request_137() {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    let rpc = json_rpc("exit")
        .on_error(move |err| e.lock().push(err.clone()))
        .spawn()
        .unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..3 {
        let tx = tx.clone();
        rpc.call(json!(7), move |r| tx.send((i, r)).unwrap());
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(rx.recv_timeout(T).unwrap());
    }
    for (_, r) in &got {
        let err = r.as_ref().unwrap_err();
        match err {
            Error::WorkerDied {
                status,
                outstanding,
                ..
            } => {
                assert!(status.contains("exit status: 7"), "{err}");
                assert_eq!(*outstanding, 3);
            }
            e => panic!("unexpected error {e}"),
        }
        assert!(err.to_string().contains("ended unexpectedly"), "{err}");
    }
    assert!(rpc.call_wait(json!(1), T).is_err());
    let _ = rpc.join(T);
    assert_eq!(errors.lock().len(), 1, "on_error runs once");
}

fn event_without_on_event_is_an_error_138() {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    let rpc = Rpc::builder(Worker::current_exe(), "event_raw")
        .on_error(move |err| e.lock().push(err.clone()))
        .spawn()
        .unwrap();
    assert_eq!(rpc.call_wait(b"x".to_vec(), T).unwrap(), b"x".to_vec());
    rpc.join(T).unwrap();
    let errs = errors.lock();
    assert_eq!(errs.len(), 1);
    assert!(
        matches!(errs[0], Error::UnhandledEvent { .. }),
        "{}",
        errs[0]
    );
    assert!(errs[0].to_string().contains("no on_event handler"));
}

fn init_runs_first_with_its_args_139() {
    let rpc = json_rpc("whoami")
        .init(
            "record_init",
            vec![b"one".to_vec(), vec![], b"three".to_vec()],
        )
        .spawn()
        .unwrap();
    let v = rpc.call_wait(json!(null), T).unwrap();
    assert_eq!(v["init"], json!(["one", "", "three"]));
    assert_eq!(v["calls_before"], json!(0));
    rpc.join(T).unwrap();
}

fn serialisers_round_trip_140() {
    let binary: Vec<Vec<u8>> = vec![
        (0..=255u8).collect(),
        vec![],
        vec![0x80; 300],
        b"\0\n".to_vec(),
    ];
    let rpc = Rpc::builder(Worker::current_exe(), "echo_strings")
        .serialiser(Strings)
        .spawn()
        .unwrap();
    assert_eq!(rpc.call_wait(binary.clone(), T).unwrap(), binary);
    rpc.join(T).unwrap();

    let nested = json!({"a": [1, 2.5, {"b": null, "c": [true, "ü\u{0}"]}], "d": -1});
    let rpc = json_rpc("echo_json").spawn().unwrap();
    assert_eq!(rpc.call_wait(nested.clone(), T).unwrap(), nested);
    rpc.join(T).unwrap();

    let rpc = Rpc::builder(Worker::current_exe(), "echo_cbor")
        .serialiser(Cbor::<Value>::new())
        .spawn()
        .unwrap();
    assert_eq!(rpc.call_wait(nested.clone(), T).unwrap(), nested);
    rpc.join(T).unwrap();

    let rpc = Rpc::builder(Worker::current_exe(), "point")
        .serialiser(Json::<Point>::new())
        .spawn()
        .unwrap();
    let p = Point {
        x: 1,
        y: -2,
        label: "p".into(),
    };
    let q = rpc.call_wait(p, T).unwrap();
    assert_eq!(
        q,
        Point {
            x: -2,
            y: 1,
            label: "P".into()
        }
    );
    rpc.join(T).unwrap();
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn payloads_over_64k_and_mib_141() {
    let rpc = Rpc::builder(Worker::current_exe(), "reverse")
        .spawn()
        .unwrap();
    for len in [65_535, 65_536, 65_537, 100_000, 3 << 20, 5 << 20] {
        let data = pattern(len, len as u8);
        let mut want = data.clone();
        want.reverse();
        assert_eq!(rpc.call_wait(data, T).unwrap(), want, "length {len}");
    }
    rpc.join(T).unwrap();
}

fn async_done_override_142() {
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (l, l2) = (log.clone(), log.clone());
    let rpc = json_rpc("after")
        .backend(Backend::Async)
        .done("linger")
        .on_event(move |ev| l.lock().push(ev.as_str().unwrap().to_string()))
        .on_destroy(move || l2.lock().push("destroyed".into()))
        .spawn()
        .unwrap();
    rpc.call(json!([10, "x"]), |r| assert_eq!(r.unwrap(), json!("x")));
    let t0 = Instant::now();
    rpc.join(T).unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(290),
        "child lingered in done"
    );
    assert_eq!(*log.lock(), ["start x", "end x", "done ran", "destroyed"]);
}

fn kill9_busy_worker_errors_pending_calls() {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    let rpc = json_rpc("sleep")
        .on_error(move |err| e.lock().push(err.clone()))
        .spawn()
        .unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    for _ in 0..4 {
        let tx = tx.clone();
        rpc.call(json!(10_000), move |r| tx.send(r).unwrap());
    }
    std::thread::sleep(Duration::from_millis(200)); // the worker is busy now
    let t0 = Instant::now();
    kill(rpc.pid(), libc::SIGKILL);
    for _ in 0..4 {
        let err = rx.recv_timeout(T).unwrap().unwrap_err();
        assert!(err.to_string().contains("signal: 9"), "{err}");
        assert!(err.to_string().contains("4 call(s) outstanding"), "{err}");
    }
    assert!(t0.elapsed() < Duration::from_secs(5), "no hang");
    let _ = rpc.join(T);
    assert_eq!(errors.lock().len(), 1, "on_error once");
}

fn worker_function_panic_travels() {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    let rpc = json_rpc("panic")
        .on_error(move |err| e.lock().push(err.clone()))
        .spawn()
        .unwrap();
    assert_eq!(rpc.call_wait(json!(1), T).unwrap(), json!(1));
    let (tx, rx) = crossbeam_channel::unbounded();
    for v in [json!(2), json!("boom"), json!(3)] {
        let tx = tx.clone();
        rpc.call(v, move |r| tx.send(r).unwrap());
    }
    assert_eq!(rx.recv_timeout(T).unwrap().unwrap(), json!(2));
    for _ in 0..2 {
        let err = rx.recv_timeout(T).unwrap().unwrap_err();
        assert!(matches!(err, Error::Panicked { .. }), "{err}");
        assert!(err.to_string().contains("boom 42"), "{err}");
        assert!(err.to_string().contains("rpc_support"), "location: {err}");
    }
    let _ = rpc.join(T);
    assert_eq!(errors.lock().len(), 1);
}

fn garbage_on_channel_is_a_protocol_error() {
    let w = Worker::program("/bin/bash")
        .arg("-c")
        .arg(r#"printf 'hello, this is not a frame' >&$AEMP_RPC_FD; sleep 30"#);
    let (errors, e) = counter();
    let rpc = Rpc::builder(w, "anything")
        .on_error(move |_| {
            e.fetch_add(1, Ordering::SeqCst);
        })
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let err = rpc.call_wait(b"x".to_vec(), T).unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
    assert!(err.to_string().contains("unknown kind 0x68"), "{err}");
    let _ = rpc.join(T);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "the sleeping child was killed"
    );
    assert_eq!(errors.load(Ordering::SeqCst), 1);
}

/// Three threads in `call_wait` (which read the channel themselves while
/// they poll) and one making calls with callbacks, on one handle: every
/// call_wait gets its own answer; callbacks and `on_event` never run at
/// once; each call's event comes before its result; the calls' results
/// come in call order.
fn call_wait_from_many_threads_beside_calls() {
    // A callback's panic is only logged: overlaps are counted instead.
    let busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (overlaps, o) = counter();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (b, l) = (busy.clone(), log.clone());
    let rpc = json_rpc("count_sync")
        .on_event(move |ev| {
            if b.swap(true, Ordering::SeqCst) {
                o.fetch_add(1, Ordering::SeqCst);
            }
            l.lock().push(ev.as_str().unwrap().to_string());
            b.store(false, Ordering::SeqCst);
        })
        .spawn()
        .unwrap();
    let n: usize = 300;
    let waiters: Vec<_> = (1..=3usize)
        .map(|w| {
            let rpc = rpc.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    let v = json!(w * 10_000 + i);
                    assert_eq!(rpc.call_wait(v.clone(), T).unwrap(), v);
                }
            })
        })
        .collect();
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..n {
        let (b, l, tx, o) = (busy.clone(), log.clone(), tx.clone(), overlaps.clone());
        rpc.call(json!(1000 + i), move |r| {
            if b.swap(true, Ordering::SeqCst) {
                o.fetch_add(1, Ordering::SeqCst);
            }
            l.lock().push(format!("result {}", r.unwrap()));
            b.store(false, Ordering::SeqCst);
            tx.send(()).unwrap();
        });
        if i % 10 == 0 {
            std::thread::yield_now();
        }
    }
    for w in waiters {
        w.join().unwrap();
    }
    for _ in 0..n {
        rx.recv_timeout(T).unwrap();
    }
    rpc.join(T).unwrap();
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "callbacks overlapped");
    let log = log.lock();
    let results: Vec<&String> = log.iter().filter(|e| e.starts_with("result")).collect();
    let expect: Vec<String> = (0..n).map(|i| format!("result {}", 1000 + i)).collect();
    assert!(results.iter().copied().eq(expect.iter()), "{results:?}");
    for (at, e) in log.iter().enumerate() {
        if let Some(v) = e.strip_prefix("result ") {
            let ev = format!("ev {v}");
            assert!(log[..at].contains(&ev), "{ev} before {e}");
        }
    }
    assert_eq!(log.len(), 5 * n, "an event per call, a result per call()");
}

/// A bad frame that comes while `call_wait` polls (so the caller may read
/// it itself, see `Rpc::call_wait`): a frame of an unknown kind, an answer
/// to a call that is not outstanding, and garbage that is not a whole
/// frame (which the caller must hand to the receiving thread). The call fails with a
/// protocol error, the worker (asleep) is killed and reaped at once, and
/// `on_error` runs once.
fn bad_frame_during_call_wait_is_a_protocol_error() {
    let answer_999 = [b'R', 0xe7, 0x03, 0, 0, 0, 0, 0, 0];
    for (frame, says) in [
        (&b"Z\0\0\0\0\0\0\0\0"[..], "unknown kind 0x5a"),
        (&answer_999[..], "call 999, which is not outstanding"),
        // Not whole (its "length" is huge): left to the receiving thread.
        (&b"hello, this is not a frame"[..], "unknown kind 0x68"),
    ] {
        let (errors, e) = counter();
        let rpc = Rpc::builder(Worker::current_exe(), "write_raw")
            .on_error(move |_| {
                e.fetch_add(1, Ordering::SeqCst);
            })
            .spawn()
            .unwrap();
        for _ in 0..20 {
            // The worker is ready, and call_wait polls (its waits are short).
            rpc.call_wait(Vec::new(), T).unwrap();
        }
        let t0 = Instant::now();
        let err = rpc.call_wait(frame.to_vec(), T).unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err}");
        assert!(err.to_string().contains(says), "{err}");
        let _ = rpc.join(T);
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the sleeping child was killed"
        );
        assert_eq!(errors.load(Ordering::SeqCst), 1);
    }
}

fn program_that_is_not_a_worker() {
    let rpc = Rpc::builder(Worker::program("/bin/true"), "anything")
        .spawn()
        .unwrap();
    let err = rpc.call_wait(b"x".to_vec(), T).unwrap_err();
    assert!(matches!(err, Error::WorkerDied { .. }), "{err}");
    let _ = rpc.join(T);
}

fn missing_program_is_a_spawn_error() {
    let err = Rpc::builder(Worker::program("/nonexistent/worker"), "f")
        .spawn()
        .err()
        .unwrap();
    assert!(matches!(err, Error::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/worker"), "{err}");
}

fn async_1000_concurrent_calls_out_of_order() {
    let rpc = Rpc::builder(Worker::current_exe(), "double_batched")
        .backend(Backend::Async)
        .serialiser(Raw)
        .spawn()
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = crossbeam_channel::unbounded();
    for n in 0..1000u32 {
        let (tx, order) = (tx.clone(), order.clone());
        rpc.call(n.to_le_bytes().to_vec(), move |r| {
            let v = u32::from_le_bytes(r.unwrap()[..4].try_into().unwrap());
            assert_eq!(v, n * 2, "call {n} got its own result");
            order.lock().push(n);
            tx.send(()).unwrap();
        });
    }
    for _ in 0..1000 {
        rx.recv_timeout(T).unwrap();
    }
    let order = order.lock().clone();
    assert_eq!(order.len(), 1000);
    assert_eq!(&order[..3], &[49, 48, 47], "completed out of order");
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    rpc.join(T).unwrap();
}

fn async_dropped_done_is_abandoned() {
    let rpc = Rpc::builder(Worker::current_exe(), "drop_done")
        .backend(Backend::Async)
        .spawn()
        .unwrap();
    let err = rpc.call_wait(vec![1], T).unwrap_err();
    assert!(matches!(err, Error::Abandoned { .. }), "{err}");
    rpc.join(T).unwrap();
}

fn call_wait_times_out_without_hanging() {
    // The worker sleeps for ten minutes: a call_wait that waited for it
    // could not answer within the test's bound, and one that answered
    // with the result would not be a time-out.
    let rpc = Arc::new(json_rpc("sleep").spawn().unwrap());
    let (tx, rx) = crossbeam_channel::bounded(1);
    let caller = rpc.clone();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(caller.call_wait(json!(600_000), Duration::from_millis(50)));
    });
    let err = rx
        .recv_timeout(T)
        .expect("call_wait did not return")
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    kill(rpc.pid(), libc::SIGKILL);
    thread.join().unwrap(); // it has answered: ends now, dropping its handle
    let rpc = Arc::try_unwrap(rpc).unwrap_or_else(|_| panic!("a second handle is left"));
    let _ = rpc.join(T);
}

fn mismatched_serialiser_or_backend_refused() {
    let rpc = Rpc::builder(Worker::current_exe(), "echo_json")
        .spawn()
        .unwrap();
    let err = rpc.call_wait(vec![], T).unwrap_err();
    assert!(
        err.to_string().contains("uses the json serialiser"),
        "{err}"
    );
    let _ = rpc.join(T);
    let rpc = Rpc::builder(Worker::current_exe(), "echo")
        .backend(Backend::Async)
        .spawn()
        .unwrap();
    let err = rpc.call_wait(vec![], T).unwrap_err();
    assert!(err.to_string().contains("Sync backend"), "{err}");
    let _ = rpc.join(T);
}

fn round_trip_100_mib() {
    let rpc = Rpc::builder(Worker::current_exe(), "reverse")
        .spawn()
        .unwrap();
    let data = pattern(100 << 20, 7);
    let mut want = data.clone();
    want.reverse();
    let got = rpc.call_wait(data, Duration::from_secs(50)).unwrap();
    assert!(got == want, "100 MiB came back reversed");
    rpc.join(T).unwrap();
}

fn event_type_and_outside_worker_errors() {
    let err = rpc::event(&json!(1)).unwrap_err();
    assert!(matches!(err, Error::NotWorker { what: "event" }), "{err}");
    assert!(rpc::retire().is_err());
    assert!(!rpc::is_worker());
    let rpc = json_rpc("wrong_event").on_event(|_| {}).spawn().unwrap();
    let msg = rpc.call_wait(json!(null), T).unwrap();
    let msg = msg.as_str().unwrap();
    assert!(
        msg.contains("alloc::vec::Vec<u8>") && msg.contains("json"),
        "{msg}"
    );
    rpc.join(T).unwrap();
}
