//! Finds the receivers registered by `simple_receiver` through the
//! database (`db_mon`) and sends each of them a message every second.
//!
//! ```text
//! cargo run --example simple_sender                  # seed 127.0.0.1:4040
//! cargo run --example simple_sender -- 127.0.0.1:4041
//! ```

use aemp::{msg, Config, PortId};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let seed = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4040".into());
    let secret = std::env::var("AEMP_SECRET").unwrap_or_else(|_| "aemp-example".into());
    let node =
        aemp::configure(Config::new("sender/").secret(secret).seeds([seed])).unwrap_or_else(|e| {
            eprintln!("simple_sender: {e}");
            std::process::exit(1)
        });
    let receivers: Arc<Mutex<Vec<PortId>>> = Arc::default();
    let r = receivers.clone();
    let _mon = node
        .db_mon("eg_receivers", move |ev| {
            for k in &ev.add {
                println!("receiver appeared: {k}");
            }
            for k in &ev.del {
                println!("receiver gone: {k}");
            }
            *r.lock() = ev.fam.keys().filter_map(|k| k.parse().ok()).collect();
        })
        .expect("a valid family");
    for i in 0u64.. {
        for port in receivers.lock().iter() {
            node.snd(port, msg!["hello", i, node.id().as_str()]);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
