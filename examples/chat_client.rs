//! A chat client for `chat_server`: finds the server through the database
//! (`db_mon eg_chat_server`), joins, sends each stdin line, prints what
//! the server sends. A supervisor reconnects: when the server's port dies
//! (server restarted, connection lost), the client waits for a server to
//! appear in the database again and joins it.
//!
//! ```text
//! cargo run --example chat_client -- NICK [SEED]     # SEED default 127.0.0.1:4040
//! ```

use aemp::{msg, Config, Node, PortId};
use parking_lot::Mutex;
use std::io::BufRead;
use std::sync::Arc;

/// The supervisor's state: the server joined, and the monitor on it.
#[derive(Default)]
struct Session {
    server: Option<PortId>,
    guard: Option<aemp::MonGuard>,
}

/// Joins `server` and watches it; on its death, forgets it so the next
/// database event (or the present contents) triggers a new join.
fn join(node: &Node, session: &Arc<Mutex<Session>>, server: PortId, me: &PortId, nick: &str) {
    node.snd(&server, msg!["join", me.to_string(), nick]);
    let (n, s, me2, nick2) = (node.clone(), session.clone(), me.clone(), nick.to_string());
    let dead = server.clone();
    let guard = node.mon(&server, move |reason| {
        println!("* lost the server ({reason}); waiting for it to come back");
        s.lock().server = None;
        // Ask the database for the current servers, then rejoin.
        let (n2, s2) = (n.clone(), s.clone());
        let _ = n.db_keys("eg_chat_server", move |keys| {
            let next = keys
                .iter()
                .filter_map(|k| k.parse::<PortId>().ok())
                .find(|p| *p != dead);
            if let Some(p) = next {
                if s2.lock().server.is_none() {
                    join(&n2, &s2, p, &me2, &nick2);
                }
            }
        });
    });
    let mut st = session.lock();
    st.server = Some(server);
    st.guard = Some(guard);
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
    // A listen address, so the server can reach us after a reconnect.
    let node = aemp::configure(
        Config::new("chat_client/")
            .bind("127.0.0.1:0")
            .secret(secret)
            .seeds([seed]),
    )
    .unwrap_or_else(|e| {
        eprintln!("chat_client: {e}");
        std::process::exit(1)
    });
    let me = node.port_fn(|m| match m.decode::<(String, String, String)>() {
        Ok((_, nick, text)) => println!("<{nick}> {text}"),
        Err(_) => println!("{m}"),
    });
    let session: Arc<Mutex<Session>> = Arc::default();
    let (n, s, me2, nick2) = (node.clone(), session.clone(), me.clone(), nick.clone());
    let _mon = node
        .db_mon("eg_chat_server", move |ev| {
            if s.lock().server.is_some() {
                return;
            }
            if let Some(p) = ev.fam.keys().filter_map(|k| k.parse().ok()).next() {
                join(&n, &s, p, &me2, &nick2);
            }
        })
        .unwrap();
    println!("* {nick}: type lines to chat; ctrl-d ends");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let server = session.lock().server.clone();
        match server {
            Some(p) => node.snd(&p, msg!["privmsg", &nick, line]),
            None => println!("* not connected to a server yet"),
        }
    }
}
