//! The chat server of `chat_server`, "bridge head" style: the client does
//! not join over the network itself; it spawns a port on the server node
//! (`chat2::client_connect`) which joins locally, relays the server's
//! messages to the client, and forwards the client's lines. Client and
//! bridge head are linked by monitors: when either dies, so does the
//! other, and the server's local monitor removes the bridge head.
//!
//! ```text
//! cargo run --example chat_server2                 # 127.0.0.1:4040
//! cargo run --example chat_client2 -- alice        # in other terminals
//! ```

use aemp::{msg, Config, MonGuard, Node, PortId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

type Members = Arc<Mutex<HashMap<PortId, (String, MonGuard)>>>;

fn broadcast(node: &Node, members: &Members, nick: &str, text: &str) {
    println!("<{nick}> {text}");
    for port in members.lock().keys() {
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
        Config::new("chat_server2/")
            .bind(&bind)
            .secret(secret)
            .seeds([bind.clone()]),
    )
    .unwrap_or_else(|e| {
        eprintln!("chat_server2: {e}");
        std::process::exit(1)
    });
    let members: Members = Arc::default();
    let (n, m) = (node.clone(), members.clone());
    // The bridge head: spawned by a client with [client_port, nick].
    node.register("chat2::client_connect", move |args| {
        let Ok((client, nick)) = args.decode::<(PortId, String)>() else {
            log::warn!("bad client_connect {args}");
            return;
        };
        let Some(me) = aemp::self_port() else { return };
        // The client's messages to us go to the chat; the chat's go to it.
        let (n2, m2, nick2) = (n.clone(), m.clone(), nick.clone());
        n.rcv(&me, "say", move |line| {
            if let Ok((text,)) = line.decode::<(String,)>() {
                broadcast(&n2, &m2, &nick2, &text);
            }
        })
        .unwrap();
        let c2 = client.clone();
        let n2 = n.clone();
        n.rcv(&me, "msg", move |rest| {
            let mut out = msg!["msg"];
            out.extend(rest.to_vec());
            n2.snd(&c2, out);
        })
        .unwrap();
        // Linked: the client's death kills us (and ours the client).
        n.mon_link(&client, &me).forget();
        n.mon_link(&me, &client).forget();
        let (n2, m2, me2) = (n.clone(), m.clone(), me.clone());
        let guard = n.mon(&me, move |reason| {
            if let Some((nick, _)) = m2.lock().remove(&me2) {
                broadcast(&n2, &m2, "server", &format!("{nick} left ({reason})"));
            }
        });
        m.lock().insert(me, (nick.clone(), guard));
        broadcast(&n, &m, "server", &format!("{nick} joined"));
    });
    // Clients find the server node through this entry.
    node.db_set("eg_chat_server2", node.id().as_str(), bind.as_str())
        .unwrap()
        .forget();
    println!("chat server2 {} on {bind}", node.id());
    // Until Ctrl-C or SIGTERM; then the node shuts down: other nodes'
    // monitors of its ports get ["shutdown"], the connections close cleanly.
    if let Err(e) = node.wait_for_termination() {
        eprintln!("chat_server2: {e}");
    }
}
