//! A node that echoes: a message `[reply_port, args...]` sent to its echo
//! port comes back to `reply_port` as `["echo", args...]`.
//!
//! Run it in one terminal, then `node_ping` in another:
//!
//! ```text
//! AEMP_SECRET=geheim cargo run --example node_echo -- 127.0.0.1:4040
//! # prints: echo port: echo/Xk3...#p1
//! AEMP_SECRET=geheim cargo run --example node_ping -- 127.0.0.1:4040 'echo/Xk3...#p1' hello
//! ```
//!
//! The argument is the listen address (default `127.0.0.1:4040`); the
//! secret comes from `AEMP_SECRET` or `--secret SECRET`.

use aemp::{msg, Config, PortId};

fn secret(args: &mut Vec<String>) -> Option<String> {
    if let Some(i) = args.iter().position(|a| a == "--secret") {
        args.remove(i);
        if i < args.len() {
            return Some(args.remove(i));
        }
        return None;
    }
    std::env::var("AEMP_SECRET").ok().filter(|s| !s.is_empty())
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let Some(secret) = secret(&mut args) else {
        eprintln!("node_echo: no secret: set AEMP_SECRET or pass --secret SECRET");
        std::process::exit(2);
    };
    let bind = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:4040".into());
    let node = match aemp::configure(Config::new("echo/").bind(&bind).secret(secret)) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("node_echo: {e}");
            std::process::exit(1);
        }
    };
    let echo = node.port_fn(|m| {
        let Some(Ok(reply)) = m.first().map(PortId::try_from) else {
            log::warn!("ignoring {m}: element 0 must be a reply port");
            return;
        };
        log::info!("echo from {:?}: {m}", aemp::src_node());
        let mut answer = msg!["echo"];
        answer.extend(m[1..].iter().cloned());
        aemp::snd(&reply, answer);
    });
    for a in node.listen_addrs() {
        println!("listening on {a}");
    }
    println!("echo port: {echo}");
    let _nodes = node
        .mon_nodes(|n, up, r| {
            println!(
                "node {n} {}{}",
                if up { "up" } else { "down " },
                if up { String::new() } else { r.to_string() }
            )
        })
        .expect("networked node");
    // Until Ctrl-C or SIGTERM; then the node shuts down: other nodes'
    // monitors of its ports get ["shutdown"], the connections close cleanly.
    if let Err(e) = node.wait_for_termination() {
        eprintln!("node_echo: {e}");
    }
}
