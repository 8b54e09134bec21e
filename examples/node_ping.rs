//! Sends a message to a port on another node and prints the reply; see
//! `node_echo` for how to run the two across terminals:
//!
//! ```text
//! AEMP_SECRET=geheim cargo run --example node_ping -- 127.0.0.1:4040 'echo/Xk3...#p1' hello
//! ```
//!
//! Arguments: the address of the port's node, the port ID, then the
//! message elements (strings). The message sent is
//! `[reply_port, elements...]`. The secret comes from `AEMP_SECRET` or
//! `--secret SECRET`. Exits with status 1 if no reply comes within 5 s or
//! the connection fails.

use aemp::{Config, Node, PortId};
use std::time::{Duration, Instant};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let secret = match args.iter().position(|a| a == "--secret") {
        Some(i) if i + 1 < args.len() => {
            args.remove(i);
            Some(args.remove(i))
        }
        _ => std::env::var("AEMP_SECRET").ok().filter(|s| !s.is_empty()),
    };
    let fail = |text: String| -> ! {
        eprintln!("node_ping: {text}");
        std::process::exit(1)
    };
    let Some(secret) = secret else {
        fail("no secret: set AEMP_SECRET or pass --secret SECRET".into())
    };
    if args.len() < 2 {
        fail("usage: node_ping ADDRESS PORT_ID [WORDS...]".into());
    }
    let port: PortId = args[1]
        .parse()
        .unwrap_or_else(|e| fail(format!("bad port ID: {e}")));
    let node = Node::with_config(
        Config::new("ping/")
            .secret(secret)
            .monitor_timeout(Duration::from_secs(4))
            .address(port.node(), &args[0]),
    )
    .unwrap_or_else(|e| fail(e.to_string()));
    let (tx, rx) = crossbeam_channel::bounded(1);
    let t2 = tx.clone();
    let reply = node.port_fn(move |m| {
        let _ = tx.send(Ok(m));
    });
    let _guard = node.mon(&port, move |reason| {
        let _ = t2.send(Err(reason));
    });
    let mut msg = aemp::msg![&reply];
    for w in &args[2..] {
        msg.push(w.as_str().into());
    }
    let t = Instant::now();
    node.snd(&port, msg);
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(m)) => println!("reply {m} after {:.3} ms", t.elapsed().as_secs_f64() * 1e3),
        Ok(Err(reason)) => fail(format!("{port} is gone: {reason}")),
        Err(_) => fail(format!("no reply from {port} within 5 s")),
    }
}
