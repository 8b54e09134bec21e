//! A receiver registered in the database; `simple_sender` finds it there.
//! The receiver is its own seed, so it is a global node and keeps the
//! database. Run in separate terminals:
//!
//! ```text
//! cargo run --example simple_receiver               # seed on 127.0.0.1:4040
//! cargo run --example simple_receiver -- 127.0.0.1:4041 127.0.0.1:4040   # a second one
//! cargo run --example simple_sender                 # sends to every receiver each second
//! ```
//!
//! Arguments: the listen address (default `127.0.0.1:4040`) and the seed
//! (default: the listen address, i.e. itself). Secret: `AEMP_SECRET`,
//! default `aemp-example`.

use aemp::Config;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bind = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:4040".into());
    let seed = args.get(1).cloned().unwrap_or_else(|| bind.clone());
    let secret = std::env::var("AEMP_SECRET").unwrap_or_else(|_| "aemp-example".into());
    let node = aemp::configure(
        Config::new("receiver/")
            .bind(&bind)
            .secret(secret)
            .seeds([seed]),
    )
    .unwrap_or_else(|e| {
        eprintln!("simple_receiver: {e}");
        std::process::exit(1)
    });
    let port = node.port_fn(|m| println!("received: {m}"));
    node.db_reg("eg_receivers", &port)
        .expect("a valid family")
        .forget();
    println!("receiver {port} registered in eg_receivers; waiting for messages");
    // Until Ctrl-C or SIGTERM; then the node shuts down: other nodes'
    // monitors of its ports get ["shutdown"], the connections close cleanly.
    if let Err(e) = node.wait_for_termination() {
        eprintln!("simple_receiver: {e}");
    }
}
