//! Shared by the `rpc_*` test programs: the worker functions they serve, and
//! a tiny test runner.
//!
//! The `rpc_*` tests are `harness = false` programs: their `main` registers
//! the worker functions, calls `aemp::rpc::serve_if_worker()` (so the same
//! binary, re-executed, is the worker), and then runs the tests one after
//! the other. Each test is bounded in time, and after each one the runner
//! checks that no child process is left (no zombies).
#![allow(dead_code)]

pub mod typed;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aemp::rpc::{self, Done, Json, Raw, Strings};
use parking_lot::Mutex;
use serde_json::{json, Value};

/// Init arguments received by `record_init`, in the worker.
static INIT_ARGS: Mutex<Option<Vec<Vec<u8>>>> = Mutex::new(None);
static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Microseconds since the epoch (comparable across processes).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Registers every worker function the tests use. In a worker started
/// with `RPC_TEST_SPAWN_FIRST` set, first tries to start a worker (before
/// `serve_if_worker`, which must be refused) and keeps the error for
/// `T_SPAWN_FIRST`.
pub fn register_workers() {
    typed::register();
    // Read before `serve_if_worker` takes it out of the environment.
    static CHAN_FD: std::sync::OnceLock<Option<i32>> = std::sync::OnceLock::new();
    CHAN_FD.get_or_init(|| std::env::var("AEMP_RPC_FD").ok()?.parse().ok());
    if std::env::var_os("RPC_TEST_SPAWN_FIRST").is_some() {
        let tried = rpc::Rpc::builder(rpc::Worker::current_exe(), "echo").spawn();
        *typed::SPAWN_FIRST.lock() = Some(match tried {
            Ok(_) => "a worker started a worker before serving".into(),
            Err(e) => format!("{e:?}"),
        });
    }
    // Raw: reverse the octets (data flows both ways).
    rpc::register_sync("reverse", Raw, |mut v: Vec<u8>| {
        v.reverse();
        v
    });
    rpc::register_sync("echo", Raw, |v: Vec<u8>| v);
    rpc::register_sync("echo_strings", Strings, |v: Vec<Vec<u8>>| v);
    rpc::register_sync("echo_json", Json::new(), |v: Value| v);
    rpc::register_sync("echo_cbor", rpc::Cbor::<Value>::new(), |v: Value| v);
    rpc::register_sync("point", Json::<Point>::new(), |p: Point| Point {
        x: p.y,
        y: p.x,
        label: p.label.to_uppercase(),
    });
    // Returns what init saw, this process's pid, args and an env variable.
    rpc::register_sync("whoami", Json::new(), |_v: Value| {
        let init: Option<Vec<String>> = INIT_ARGS.lock().as_ref().map(|a| {
            a.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        });
        json!({
            "pid": std::process::id(),
            "init": init,
            "args": std::env::args().skip(1).collect::<Vec<_>>(),
            "env": std::env::var("RPC_TEST_ENV").ok(),
            "calls_before": CALLS.fetch_add(1, Ordering::SeqCst),
            "threads": std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| s.lines().find(|l| l.starts_with("Threads:")).map(|l| l[8..].trim().to_string())),
        })
    });
    rpc::register_init("record_init", |args| {
        // The extra descriptor, if any: say hello through it.
        if let Some(fd) = rpc::take_extra_fd() {
            use std::io::Write;
            let mut f = std::fs::File::from(fd);
            f.write_all(b"hello through the extra fd")
                .map_err(|e| e.to_string())?;
        }
        *INIT_ARGS.lock() = Some(args);
        Ok(())
    });
    rpc::register_init("failing_init", |args| {
        Err(format!("refusing with {} argument(s)", args.len()))
    });
    // Sync: an event before each result ("ev n"), then the result n.
    rpc::register_sync("count_sync", Json::new(), |v: Value| {
        rpc::event(&json!(format!("ev {v}"))).unwrap();
        v
    });
    // Sync: sleeps for `v` ms, returns pid, start and end times in µs.
    rpc::register_sync("sleep", Json::new(), |v: Value| {
        let start = now_us();
        std::thread::sleep(Duration::from_millis(v.as_u64().unwrap_or(0)));
        json!([std::process::id(), start, now_us()])
    });
    rpc::register_sync("exit", Json::new(), |v: Value| {
        std::process::exit(v.as_i64().unwrap_or(3) as i32)
    });
    rpc::register_sync("panic", Json::new(), |v: Value| {
        if v == json!("boom") {
            panic!("boom {}", 42);
        }
        v
    });
    rpc::register_sync("retire_then_pid", Json::new(), |_v: Value| {
        rpc::retire().unwrap();
        rpc::retire().unwrap(); // repeat calls are fine
        json!(std::process::id())
    });
    rpc::register_sync("pid", Json::new(), |_v: Value| json!(std::process::id()));
    // Writes its arguments to the parent as they are (bypassing the
    // framing: a bad frame), then sleeps, so the parent must kill it.
    // Without arguments it just answers.
    rpc::register_sync("write_raw", Raw, |v: Vec<u8>| {
        use std::io::Write;
        if v.is_empty() {
            return v;
        }
        use std::os::fd::FromRawFd;
        let fd = CHAN_FD
            .get()
            .copied()
            .flatten()
            .expect("the channel's descriptor");
        // SAFETY: the channel's descriptor stays open (ManuallyDrop).
        let mut chan = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
        chan.write_all(&v).unwrap();
        std::thread::sleep(Duration::from_secs(30));
        v
    });
    // Async: completes after `v[0]` ms from a timer thread with `v[1]`,
    // emitting "start i" at once and "end i" just before the result.
    rpc::register_async("after", Json::new(), |done: Done<Json>, v: Value| {
        let ms = v[0].as_u64().unwrap_or(0);
        let tag = v[1].as_str().unwrap_or("?").to_string();
        rpc::event(&json!(format!("start {tag}"))).unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            rpc::event(&json!(format!("end {tag}"))).unwrap();
            done.done(json!(tag));
        });
    });
    // Async over raw octets: completes in reverse arrival order in batches
    // of 50 (so results come out of order), doubling the u32 it got.
    static HELD: Mutex<Vec<(Done<Raw>, u32)>> = Mutex::new(Vec::new());
    rpc::register_async("double_batched", Raw, |done: Done<Raw>, v: Vec<u8>| {
        let n = u32::from_le_bytes(v[..4].try_into().unwrap());
        let mut held = HELD.lock();
        held.push((done, n));
        if held.len() == 50 || n == u32::MAX {
            while let Some((d, n)) = held.pop() {
                d.done(n.wrapping_mul(2).to_le_bytes().to_vec());
            }
        }
    });
    rpc::register_async("drop_done", Raw, |done: Done<Raw>, _v: Vec<u8>| drop(done));
    rpc::register_done("linger", || {
        std::thread::sleep(Duration::from_millis(300));
        rpc::event(&json!("done ran")).unwrap();
    });
    // Emits an event of the wrong type; answers with the error text.
    rpc::register_sync("wrong_event", Json::new(), |_v: Value| {
        json!(rpc::event(&b"octets".to_vec()).unwrap_err().to_string())
    });
    rpc::register_sync("event_raw", Raw, |v: Vec<u8>| {
        rpc::event(&v).unwrap();
        v
    });
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
pub struct Point {
    pub x: i64,
    pub y: i64,
    pub label: String,
}

/// Process ids of our live or zombie children, from /proc.
pub fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) S ppid ..."; comm may contain spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if f.next().and_then(|p| p.parse::<u32>().ok()) == Some(me) {
            out.push((pid, state));
        }
    }
    out
}

/// Waits until `cond` holds, at most `timeout`.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// Sends a signal to a process.
pub fn kill(pid: u32, sig: i32) {
    // SAFETY: plain kill(2) on a child we started.
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig}) failed");
}

pub type Test = (&'static str, fn());

/// Runs the tests named on the command line (substring match; all when
/// none), each on its own thread with a 60 s limit, and checks after each
/// that every child process was reaped. Prints libtest-style lines and
/// exits non-zero on failure.
pub fn run(tests: &[Test]) {
    let _ = env_logger::builder().is_test(true).try_init();
    // Understands the libtest options test runners use: `--list`
    // (`--format terse`, `--ignored`), `--exact`, `--skip NAME`; other
    // options are ignored.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let (mut list, mut exact, mut ignored) = (false, false, false);
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--list" => list = true,
            "--exact" => exact = true,
            "--ignored" => ignored = true,
            "--skip" => {
                i += 1;
                skips.extend(args.get(i).cloned());
            }
            "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" => i += 1,
            _ if a.starts_with('-') => {}
            _ => filters.push(a.to_string()),
        }
        i += 1;
    }
    let chosen: Vec<&Test> = tests
        .iter()
        .filter(|(n, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        n == f
                    } else {
                        n.contains(f.as_str())
                    }
                })
        })
        .filter(|(n, _)| !skips.iter().any(|s| n.contains(s.as_str())))
        .filter(|_| !ignored)
        .collect();
    if list {
        for (name, _) in &chosen {
            println!("{name}: test");
        }
        return;
    }
    println!("\nrunning {} tests", chosen.len());
    let started = Instant::now();
    let (mut passed, mut failed) = (0, 0);
    for (name, f) in chosen {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let f = *f;
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let r = catch_unwind(AssertUnwindSafe(f));
                let _ = tx.send(r.is_ok());
            })
            .unwrap();
        let ok = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(ok) => ok,
            Err(_) => {
                println!("test {name} ... FAILED (timed out after 60 s)");
                println!(
                    "\ntest result: FAILED. {passed} passed; {} failed",
                    failed + 1
                );
                std::process::exit(1);
            }
        };
        // Every child must have been reaped by the end of the test.
        let reaped = wait_until(Duration::from_secs(5), || children().is_empty());
        if ok && reaped {
            passed += 1;
            println!("test {name} ... ok");
        } else {
            failed += 1;
            if !reaped {
                println!("test {name} ... FAILED (children left: {:?})", children());
            } else {
                println!("test {name} ... FAILED");
            }
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
