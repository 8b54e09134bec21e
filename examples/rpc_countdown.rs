//! The async backend: each call starts a countdown on a timer thread in the
//! worker, sending an event per tick; short countdowns finish first, so the
//! results arrive in a different order than the calls.
//!
//! ```text
//! cargo run --example rpc_countdown
//! ```

use std::time::Duration;

use aemp::rpc::{self, Backend, Done, Json, Rpc, Worker};
use serde_json::{json, Value};

/// The worker function: `{"name": s, "from": n}` counts down from `n`, one
/// tick per 100 ms, then answers `"<name> done"`.
fn countdown(done: Done<Json>, args: Value) {
    let name = args["name"].as_str().unwrap_or("?").to_string();
    let from = args["from"].as_u64().unwrap_or(1);
    std::thread::spawn(move || {
        for left in (1..=from).rev() {
            let _ = rpc::event(&json!({"name": name, "left": left}));
            std::thread::sleep(Duration::from_millis(100));
        }
        done.done(json!(format!("{name} done")));
    });
}

fn main() {
    rpc::register_async("countdown", Json::new(), countdown);
    rpc::serve_if_worker().expect("serve_if_worker comes first in main");

    env_logger::init();
    let rpc = Rpc::builder(Worker::current_exe(), "countdown")
        .serialiser(Json::new())
        .backend(Backend::Async)
        .on_event(|ev: Value| eprintln!("  {}: {}", ev["name"].as_str().unwrap_or("?"), ev["left"]))
        .spawn()
        .expect("start the worker");

    for (name, from) in [("slow", 5), ("fast", 1), ("medium", 3)] {
        println!("call {name} (from {from})");
        rpc.call(json!({"name": name, "from": from}), |r| match r {
            Ok(v) => println!("result: {}", v.as_str().unwrap_or("?")),
            Err(e) => println!("error: {e}"),
        });
    }
    rpc.join(Duration::from_secs(10))
        .expect("the worker exits cleanly");
}
