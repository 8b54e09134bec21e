//! A process pool with progress events and a crashing worker.
//!
//! Six frames are rendered by a pool of two workers, each given up to
//! three frames at a time (`load(3)`): worker 1 gets frames 1, 3 and 5,
//! worker 2 frames 2, 4 and 6. Every frame reports its progress as typed
//! events, each naming its call and the worker running it. Frame 1
//! crashes its worker halfway: frame 1 fails, and frames 3 and 5, which
//! were waiting behind it on that worker and never started, go to another
//! worker and complete.
//!
//! The program checks that this is what happened and exits with status 0
//! (1 if not).
//!
//! ```text
//! cargo run --example pool_progress
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aemp::rpc::{self, CallError, Error, Events, Function, Worker};
use parking_lot::Mutex;

/// Renders frame `n`; its events are percentages done; a frame that
/// fails says why in a `String`.
const RENDER: Function<u32, String, u8, String> = Function::json("render");

/// The worker function. Frame 1 is cursed: its worker dies halfway.
fn render(frame: u32, progress: &Events<u8>) -> Result<String, String> {
    for percent in [25, 50, 75, 100] {
        if frame == 1 && percent == 75 {
            std::process::exit(3); // a crash: the worker process ends
        }
        std::thread::sleep(Duration::from_millis(20)); // the work
        progress.send(&percent).map_err(|e| e.to_string())?;
    }
    Ok(format!("frame {frame} rendered"))
}

fn main() -> ExitCode {
    RENDER.register(render);
    rpc::serve_if_worker().expect("serve_if_worker comes first in main");

    let pool = RENDER
        .pool(Worker::current_exe())
        .max(2)
        .idle(2) // both workers up front, so frames are dealt 1, 2, 1, 2, ...
        .load(3)
        .start(Duration::ZERO)
        .on_error(|e| println!("worker lost: {e}"))
        .build()
        .expect("start the pool");

    // Which workers sent each frame's events, and each frame's result.
    let workers: Arc<Mutex<HashMap<u32, Vec<u64>>>> = Arc::default();
    let (tx, rx) = crossbeam_channel::unbounded();
    for frame in 1..=6 {
        let (workers, tx) = (workers.clone(), tx.clone());
        pool.call_with_events(
            frame,
            move |ev| {
                println!(
                    "frame {frame}: {:>3}% (call {}, worker {})",
                    ev.value, ev.call, ev.worker
                );
                workers.lock().entry(frame).or_default().push(ev.worker);
            },
            move |result| tx.send((frame, result)).expect("main waits"),
        );
    }
    let mut results = HashMap::new();
    for _ in 1..=6 {
        let (frame, result) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("every frame answers");
        match &result {
            Ok(text) => println!("frame {frame}: {text}"),
            Err(CallError::Failed(why)) => println!("frame {frame}: failed: {why}"),
            Err(CallError::Rpc(e)) => println!("frame {frame}: lost: {e}"),
        }
        results.insert(frame, result);
    }
    pool.join(Duration::from_secs(30))
        .expect("the pool finishes");

    // Check that it went as documented.
    let workers = workers.lock();
    let ran_on = |frame| workers.get(&frame).cloned().unwrap_or_default();
    let crashed = ran_on(1).first().copied().unwrap_or(0);
    let mut wrong = Vec::new();
    if !matches!(results[&1], Err(CallError::Rpc(Error::WorkerDied { .. }))) {
        wrong.push(format!(
            "frame 1 should have died with its worker: {:?}",
            results[&1]
        ));
    }
    for frame in 2..=6 {
        if results[&frame].is_err() {
            wrong.push(format!("frame {frame} failed: {:?}", results[&frame]));
        }
        if ran_on(frame).contains(&crashed) {
            wrong.push(format!("frame {frame} ran on the crashed worker {crashed}"));
        }
    }
    if wrong.is_empty() {
        println!("as documented: frame 1 died with worker {crashed}; frames 3 and 5, queued behind it, completed on another worker");
        ExitCode::SUCCESS
    } else {
        println!("NOT as documented:\n  {}", wrong.join("\n  "));
        ExitCode::FAILURE
    }
}
