//! The selective-receive file writer (Coro::MP's ioserver).
//!
//! The I/O server is a thread port. It takes a `write_file` request, then
//! only *that* client's `data` messages until an empty one; requests and
//! data of other clients wait in its mailbox, in order. A supervisor
//! reports the server's death.
//!
//! ```text
//! cargo run --release --example ioserver
//! ```

use aemp::{msg, reason, Message, PortId};
use std::io::Write;
use std::time::Duration;

/// `["write_file", path, client]`, then `["data", client, bytes]` until the
/// bytes are empty; answers `["written", path, length]` to the client.
fn ioserver(mb: &mut aemp::Mailbox) -> aemp::Result<()> {
    loop {
        let (path, client): (String, PortId) = mb.get_tag("write_file")?.decode()?;
        let mut file = std::fs::File::create(&path)
            .map_err(|e| aemp::Error::Encode(format!("cannot create {path}: {e}")))?;
        let mut written = 0;
        loop {
            // Only this client's data; everything else stays queued.
            let data = mb
                .get_cond_timeout(
                    |m| m.tag() == Some("data") && m[1] == client.as_str(),
                    Duration::from_secs(5),
                )?
                .ok_or_else(|| aemp::Error::Encode(format!("{client} stopped sending")))?;
            let chunk = data[2].as_str().unwrap_or_default();
            if chunk.is_empty() {
                break;
            }
            file.write_all(chunk.as_bytes())
                .map_err(|e| aemp::Error::Encode(format!("cannot write {path}: {e}")))?;
            written += chunk.len();
        }
        aemp::snd(&client, msg!["written", path, written]);
    }
}

fn main() {
    env_logger::init();
    let dir = std::env::temp_dir().join(format!("aemp-ioserver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let server = aemp::port_thread(ioserver);

    // The supervisor.
    let (dead_tx, dead_rx) = std::sync::mpsc::channel();
    aemp::mon(&server, move |reason| {
        println!("supervisor: ioserver died with reason {reason}");
        dead_tx.send(()).unwrap();
    })
    .forget();

    // Three clients interleave their requests and data; the server still
    // writes each file from one client's data only.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let clients: Vec<PortId> = (0..3)
        .map(|i| {
            let done_tx = done_tx.clone();
            aemp::port_fn(move |m: Message| done_tx.send((i, m)).unwrap())
        })
        .collect();
    for (i, client) in clients.iter().enumerate() {
        let path = dir.join(format!("client{i}.txt"));
        aemp::snd(&server, msg!["write_file", path.to_str().unwrap(), client]);
    }
    for line in 0..3 {
        for (i, client) in clients.iter().enumerate().rev() {
            aemp::snd(
                &server,
                msg!["data", client, format!("client {i} line {line}\n")],
            );
        }
    }
    for client in &clients {
        aemp::snd(&server, msg!["data", client, ""]);
    }

    for _ in 0..clients.len() {
        let (i, answer) = done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        println!("client {i}: {answer}");
    }
    for i in 0..clients.len() {
        let text = std::fs::read_to_string(dir.join(format!("client{i}.txt"))).unwrap();
        assert!(text.lines().all(|l| l.starts_with(&format!("client {i} "))));
    }
    println!("every file holds only its own client's lines");

    aemp::kil(&server, reason!["shutdown", "demo finished"]).unwrap();
    dead_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
