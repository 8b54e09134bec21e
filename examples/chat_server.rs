//! A chat server found through the database: it registers its port in
//! `eg_chat_server`; clients (`chat_client`) join with
//! `["join", client_port, nick]` and send `["privmsg", nick, text]`; every
//! line goes to every client as `["msg", nick, text]`. A client whose port
//! dies (its process ended, or the connection was lost) is removed by its
//! monitor. The server is its own seed (a global node).
//!
//! ```text
//! cargo run --example chat_server                 # 127.0.0.1:4040
//! cargo run --example chat_client -- alice        # in other terminals
//! cargo run --example chat_client -- bob
//! ```

use aemp::{msg, Config, MonGuard, Node, PortId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

type Clients = Arc<Mutex<HashMap<PortId, (String, MonGuard)>>>;

fn broadcast(node: &Node, clients: &Clients, nick: &str, text: &str) {
    println!("<{nick}> {text}");
    for port in clients.lock().keys() {
        node.snd(port, msg!["msg", nick, text]);
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4040".into());
    let secret = std::env::var("AEMP_SECRET").unwrap_or_else(|_| "aemp-example".into());
    let node = aemp::configure(
        Config::new("chat_server/")
            .bind(&bind)
            .secret(secret)
            .seeds([bind.clone()]),
    )
    .unwrap_or_else(|e| {
        eprintln!("chat_server: {e}");
        std::process::exit(1)
    });
    let clients: Clients = Arc::default();
    let server = node.port();
    let (n, c) = (node.clone(), clients.clone());
    node.rcv(&server, "join", move |m| {
        let Ok((port, nick)) = m.decode::<(PortId, String)>() else {
            log::warn!("bad join {m}");
            return;
        };
        let (n2, c2, p2, nick2) = (n.clone(), c.clone(), port.clone(), nick.clone());
        // Monitor-driven cleanup: the client's port dies, the client goes.
        let guard = n.mon(&port, move |reason| {
            if c2.lock().remove(&p2).is_some() {
                broadcast(&n2, &c2, "server", &format!("{nick2} left ({reason})"));
            }
        });
        c.lock().insert(port, (nick.clone(), guard));
        broadcast(&n, &c, "server", &format!("{nick} joined"));
    })
    .unwrap();
    let (n, c) = (node.clone(), clients.clone());
    node.rcv(&server, "privmsg", move |m| {
        if let Ok((nick, text)) = m.decode::<(String, String)>() {
            broadcast(&n, &c, &nick, &text);
        }
    })
    .unwrap();
    node.db_reg("eg_chat_server", &server).unwrap().forget();
    println!("chat server {server} on {bind}");
    // Until Ctrl-C or SIGTERM; then the node shuts down: other nodes'
    // monitors of its ports get ["shutdown"], the connections close cleanly.
    if let Err(e) = node.wait_for_termination() {
        eprintln!("chat_server: {e}");
    }
}
