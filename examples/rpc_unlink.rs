//! The original AnyEvent::Fork::RPC example: a worker process that removes
//! directories and files on request, sending a progress event every three
//! requests.
//!
//! ```text
//! cargo run --example rpc_unlink
//! RUST_LOG=debug cargo run --example rpc_unlink   # with the library's log
//! ```
//!
//! The same program is both parent and worker: `serve_if_worker()` turns it
//! into the worker when the parent re-executes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aemp::rpc::{self, Rpc, Strings, Worker};

/// Requests served so far (in the worker).
static COUNT: AtomicU64 = AtomicU64::new(0);

/// The worker function: `[cmd, path]` → `["1"]` or `["0", error]`.
fn run(args: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let count = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if count % 3 == 0 {
        let _ = rpc::event(&vec![b"ping".to_vec(), count.to_string().into_bytes()]);
    }
    let (cmd, path) = match args.as_slice() {
        [cmd, path] => (cmd.as_slice(), String::from_utf8_lossy(path).into_owned()),
        _ => return vec![b"0".to_vec(), b"expected [cmd, path]".to_vec()],
    };
    let status = match cmd {
        b"rmdir" => std::fs::remove_dir(&path),
        b"unlink" => std::fs::remove_file(&path),
        other => panic!(
            "fatal error, illegal command {:?}",
            String::from_utf8_lossy(other)
        ),
    };
    match status {
        Ok(()) => vec![b"1".to_vec()],
        Err(e) => vec![b"0".to_vec(), e.to_string().into_bytes()],
    }
}

fn main() {
    rpc::register_sync("unlink_worker", Strings, run);
    rpc::serve_if_worker().expect("serve_if_worker comes first in main");

    env_logger::init();
    let dir = tempfile::tempdir().expect("temporary directory");
    for id in 1..=6 {
        std::fs::create_dir(dir.path().join(id.to_string())).expect("mkdir");
    }
    std::fs::write(dir.path().join("file"), b"x").expect("write");

    let pid = std::process::id();
    let rpc = Rpc::builder(Worker::current_exe(), "unlink_worker")
        .serialiser(Strings)
        .on_error(move |e| eprintln!("{pid} FATAL: {e}"))
        .on_event(move |ev| {
            let ev: Vec<String> = ev
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            eprintln!("{pid} event <{}>", ev.join(" "));
        })
        .on_destroy(move || eprintln!("{pid} worker finished"))
        .spawn()
        .expect("start the worker");

    // Six rmdirs (the 7th directory does not exist), then one unlink.
    for id in 1..=7 {
        let path = dir.path().join(id.to_string()).display().to_string();
        rpc.call(
            vec![b"rmdir".to_vec(), path.clone().into_bytes()],
            move |r| match r {
                Ok(v) if v.first().map(Vec::as_slice) == Some(b"1") => println!("rmdir {path}: ok"),
                Ok(v) => println!(
                    "rmdir {path} failed: {}",
                    String::from_utf8_lossy(v.get(1).map(Vec::as_slice).unwrap_or(b"?"))
                ),
                Err(e) => println!("rmdir {path}: {e}"),
            },
        );
    }
    let file = dir.path().join("file").display().to_string();
    rpc.call(
        vec![b"unlink".to_vec(), file.clone().into_bytes()],
        move |r| {
            println!(
                "unlink {file}: {:?}",
                r.map(|v| String::from_utf8_lossy(&v[0]).into_owned())
            )
        },
    );
    // Dropping the handle lets every queued request finish first.
    rpc.join(Duration::from_secs(10))
        .expect("the worker exits cleanly");
}
