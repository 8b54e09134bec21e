//! Two thread ports play ping-pong; a third port watches them.
//!
//! ```text
//! cargo run --release --example ping_pong [ROUNDS]
//! ```

use aemp::{msg, reason, PortId};
use std::time::{Duration, Instant};

fn main() {
    env_logger::init();
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);

    // The pong player answers every ["ping", n, from] with ["pong", n].
    let pong = aemp::port_thread(|mb| -> aemp::Result<()> {
        loop {
            let (n, from): (u64, PortId) = mb.get_tag("ping")?.decode()?;
            aemp::snd(&from, msg!["pong", n]);
        }
    });

    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let pong2 = pong.clone();
    let ping = aemp::port_thread(move |mb| -> aemp::Result<()> {
        let me = mb.port().clone();
        let start = Instant::now();
        for n in 0..rounds {
            aemp::snd(&pong2, msg!["ping", n, &me]);
            let (back,): (u64,) = mb.get_tag("pong")?.decode()?;
            assert_eq!(back, n, "answers come back in order");
        }
        done_tx.send(start.elapsed()).unwrap();
        Ok(())
    });

    // A supervisor: the pong player must not die while the game is on.
    let (watch_tx, watch_rx) = std::sync::mpsc::channel();
    aemp::mon(&pong, move |reason| watch_tx.send(reason).unwrap()).forget();

    let took = done_rx.recv().unwrap();
    println!(
        "{rounds} round trips between {ping} and {pong} in {took:?} ({:.2} µs each)",
        took.as_secs_f64() * 1e6 / rounds as f64
    );
    aemp::kil(&pong, reason!["game_over", "ping finished"]).unwrap();
    let reason = watch_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    println!("pong player ended: {reason}");
}
