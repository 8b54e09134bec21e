//! The client of `chat_server2`: finds the server node in the database
//! (`eg_chat_server2`), spawns its bridge head there
//! (`chat2::client_connect`) and talks to that. If the bridge head dies
//! (server gone), the link kills this client's port and the client
//! starts over with the next server the database shows.
//!
//! ```text
//! cargo run --example chat_client2 -- NICK [SEED]    # SEED default 127.0.0.1:4040
//! ```

use aemp::{msg, Config, Node, NodeId, PortId};
use parking_lot::Mutex;
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

/// Spawns a bridge head on `server` for a fresh client port; returns the
/// bridge head.
fn connect(node: &Node, server: &NodeId, nick: &str) -> Option<PortId> {
    let me = node.port_fn(|m| match m.decode::<(String, String, String)>() {
        Ok((_, nick, text)) => println!("<{nick}> {text}"),
        Err(_) => println!("{m}"),
    });
    let head = node
        .spawn(server, "chat2::client_connect", msg![me.to_string(), nick])
        .ok()?;
    node.mon_link(&head, &me).forget();
    Some(head)
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nick = args.first().cloned().unwrap_or_else(|| "anon".into());
    let seed = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:4040".into());
    let secret = std::env::var("AEMP_SECRET").unwrap_or_else(|_| "aemp-example".into());
    let node = aemp::configure(
        Config::new("chat_client2/")
            .bind("127.0.0.1:0")
            .secret(secret)
            .seeds([seed]),
    )
    .unwrap_or_else(|e| {
        eprintln!("chat_client2: {e}");
        std::process::exit(1)
    });
    let head: Arc<Mutex<Option<PortId>>> = Arc::default();
    // The supervisor: every half second, if there is no bridge head (or
    // it died), look up the servers and connect to one.
    let (n, h, nick2) = (node.clone(), head.clone(), nick.clone());
    std::thread::spawn(move || loop {
        let alive = h.lock().clone();
        let need = match alive {
            None => true,
            Some(p) => n.node_is_up(&p.node().parse().unwrap()) == Some(false),
        };
        if need {
            if let Ok(keys) = n.db_keys_wait("eg_chat_server2", Duration::from_secs(5)) {
                if let Some(server) = keys.iter().find_map(|k| k.parse::<NodeId>().ok()) {
                    let new = connect(&n, &server, &nick2);
                    if new.is_some() {
                        println!("* connected to {server}");
                    }
                    *h.lock() = new;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    });
    println!("* {nick}: type lines to chat; ctrl-d ends");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match head.lock().clone() {
            Some(p) => node.snd(&p, msg!["say", line]),
            None => println!("* not connected yet"),
        }
    }
}
