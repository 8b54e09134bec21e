//! An ordered file-writer server on one node, its clients on another.
//!
//! The server is a thread port. It takes an `open` request, then only
//! *that* client's `write` and `close` messages, in the order they were
//! sent, until `close`; the other clients' requests wait in its mailbox.
//! Data travels as [`Octets`] (Perl's octet strings). The server monitors
//! each client while it writes that client's file, so a client that dies
//! mid-file does not stall the others: its file is abandoned. The clients
//! find the server through the database. Runs on its own and exits.
//!
//! ```text
//! cargo run --example file_writer
//! ```

use aemp::{msg, Config, Node, Octets, PortId};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Any error, with its message.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// To the server. On the wire: `["open", client, name]`,
/// `["write", client, data]`, `["close", client]`.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
enum Request {
    Open { client: PortId, name: String },
    Write { client: PortId, data: Octets },
    Close { client: PortId },
}

/// To a client: `["closed", name, length]`.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Closed { name: String, length: usize },
}

/// The server's thread: one file at a time, from one client at a time.
fn server(mb: &mut aemp::Mailbox, dir: &Path) -> Result<(), BoxError> {
    let me = mb.port().clone();
    loop {
        let Request::Open { client, name } = mb.get_tag_as("open")? else {
            unreachable!("get_tag_as(\"open\") returns open requests only")
        };
        // The client's death arrives here as ["gone", client, reason...].
        let watch = mb.node().mon_send(&client, &me, msg!["gone", &client]);
        let mut file = std::fs::File::create(dir.join(&name))?;
        let mut length = 0;
        loop {
            // Only this client's messages; everything else stays queued.
            let m = mb.get_cond(|m| {
                matches!(m.tag(), Some("write" | "close" | "gone")) && m[1] == client.as_str()
            })?;
            if m.tag() == Some("gone") {
                println!("server: {client} died while writing {name}; abandoned");
                break;
            }
            match m.decode()? {
                Request::Write { data, .. } => {
                    file.write_all(&data)?;
                    length += data.len();
                }
                Request::Close { .. } => {
                    file.sync_all()?;
                    mb.node()
                        .snd_value(&client, &Reply::Closed { name, length })?;
                    break;
                }
                Request::Open { .. } => unreachable!("not selected"),
            }
        }
        drop(watch);
    }
}

/// A client's thread: writes `lines` lines to the file `name`.
fn client(mb: &mut aemp::Mailbox, server: &PortId, name: &str, lines: usize) -> aemp::Result<()> {
    let me = mb.port().clone();
    let node = mb.node().clone();
    node.snd_value(
        server,
        &Request::Open {
            client: me.clone(),
            name: name.into(),
        },
    )?;
    for i in 0..lines {
        let data = Octets::from(format!("{name} line {i}\n").into_bytes());
        node.snd_value(
            server,
            &Request::Write {
                client: me.clone(),
                data,
            },
        )?;
    }
    node.snd_value(server, &Request::Close { client: me })?;
    let Reply::Closed { name, length } = mb.get_as()?;
    println!("client: {name} closed, {length} octets");
    Ok(())
}

fn main() -> Result<(), BoxError> {
    env_logger::init();
    let dir: PathBuf =
        std::env::temp_dir().join(format!("aemp-file-writer-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let secret = "file-writer-example";
    let config = |name: &str| Config::new(name).bind("127.0.0.1:0").secret(secret);

    // The server's node is its own seed (a global node).
    let server_node = Node::with_config(config("writer-server/%u"))?;
    let at = server_node.listen_addrs()[0].to_string();
    server_node.add_seed(&at)?;
    let server_dir = dir.clone();
    let server_port = server_node.port_thread(move |mb| server(mb, &server_dir));
    let _entry = server_node.db_reg("file_writer", &server_port)?;

    // The clients' node finds the server in the database.
    let clients = Node::with_config(config("writer-clients/%u").seeds([at]))?;
    let server_port: PortId = clients
        .db_keys_wait("file_writer", Duration::from_secs(10))?
        .first()
        .ok_or("no file_writer in the database")?
        .parse()?;

    // Three clients interleave their requests; a fourth dies mid-file.
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    for (i, lines) in [(0, 3), (1, 5), (2, 4)] {
        let (server, done) = (server_port.clone(), done_tx.clone());
        let name = format!("client{i}.txt");
        let port = clients.port_thread(move |mb| client(mb, &server, &name, lines));
        clients
            .mon(&port, move |reason| done.send(reason).unwrap())
            .forget();
    }
    let doomed = clients.port();
    clients.snd_value(
        &server_port,
        &Request::Open {
            client: doomed.clone(),
            name: "doomed.txt".into(),
        },
    )?;
    clients.kil(&doomed, aemp::reason!["crashed", "on purpose"])?;

    for _ in 0..3 {
        let reason = done_rx.recv_timeout(Duration::from_secs(10))?;
        assert!(reason.is_normal(), "a client failed: {reason}");
    }
    for (i, lines) in [(0, 3), (1, 5), (2, 4)] {
        let text = std::fs::read_to_string(dir.join(format!("client{i}.txt")))?;
        let want: String = (0..lines)
            .map(|l| format!("client{i}.txt line {l}\n"))
            .collect();
        assert_eq!(
            text, want,
            "client{i}.txt is not its client's lines in order"
        );
    }
    println!("every file holds its own client's lines, in order");

    clients.shutdown();
    server_node.shutdown();
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
