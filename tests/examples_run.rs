//! Runs user programs from `examples/` and checks that they behave as they
//! document: exit status 0 and the expected lines of output.
//!
//! `cargo test` builds the examples before it runs the tests; the binary
//! of example `x` is `target/<profile>/examples/x`, next to this test's
//! own `deps/` directory. (`cargo test --test examples_run` alone builds
//! no example: run `cargo build --examples` first.)

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The compiled example `name`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds it (or `cargo build --examples`)",
        path.display()
    );
    path
}

/// Runs `program` for at most `limit` (then kills it and fails); returns
/// its exit status and its standard output.
fn run_bounded(program: PathBuf, limit: Duration) -> (ExitStatus, String) {
    let mut child = Command::new(&program)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the example") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not finish within {limit:?}; output so far:\n{}",
                program.display(),
                reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().expect("the output"))
}

#[test]
fn pool_progress_runs_as_documented() {
    let (status, out) = run_bounded(example("pool_progress"), Duration::from_secs(120));
    assert!(status.success(), "exit status {status}; output:\n{out}");
    for line in [
        "frame 1: lost: worker render",
        "exit status: 3",
        "frame 3: frame 3 rendered",
        "frame 5: frame 5 rendered",
        "frame 6: 100% (call 6, worker",
        "as documented: frame 1 died with worker 1",
    ] {
        assert!(out.contains(line), "no {line:?} in the output:\n{out}");
    }
    assert!(!out.contains("NOT as documented"), "{out}");
}

#[test]
fn job_farm_runs_as_documented() {
    let (status, out) = run_bounded(example("job_farm"), Duration::from_secs(120));
    assert!(status.success(), "exit status {status}; output:\n{out}");
    for line in [
        "found 3 workers through the database",
        "job 0: 1 (by farm-worker",
        "job 11: 144 (by farm-worker",
        "12 results in job order from 3 workers",
    ] {
        assert!(out.contains(line), "no {line:?} in the output:\n{out}");
    }
}

#[test]
fn file_writer_runs_as_documented() {
    let (status, out) = run_bounded(example("file_writer"), Duration::from_secs(120));
    assert!(status.success(), "exit status {status}; output:\n{out}");
    for line in [
        "died while writing doomed.txt; abandoned",
        "client: client0.txt closed, 57 octets",
        "client: client1.txt closed, 95 octets",
        "client: client2.txt closed, 76 octets",
        "every file holds its own client's lines, in order",
    ] {
        assert!(out.contains(line), "no {line:?} in the output:\n{out}");
    }
}
