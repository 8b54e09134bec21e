//! Typed messages: a thread port serves requests sent as a Rust enum and
//! answers with a struct; binary data travels as `Octets` (Perl's octet
//! strings). Runs on its own and exits.
//!
//! ```text
//! cargo run --example typed_messages
//! ```

use aemp::{Message, Node, Octets, PortId, Reason};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Requests: `["checksum", reply, data]` and `["stop"]` on the wire.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
enum Request {
    Checksum { reply: PortId, data: Octets },
    Stop,
}

/// The answer: `["sum", len, sum]`, fields in declaration order.
#[derive(Serialize, Deserialize, Debug)]
struct Sum {
    tag: String,
    len: usize,
    sum: u32,
}

fn main() -> aemp::Result<()> {
    let node = Node::new("typed")?;
    let server = node.port_thread(|mb| -> aemp::Result<()> {
        while let Request::Checksum { reply, data } = mb.get_as::<Request>()? {
            let sum = data.iter().map(|&b| u32::from(b)).sum();
            let answer = Sum {
                tag: "sum".into(),
                len: data.len(),
                sum,
            };
            aemp::snd_value(&reply, &answer)?;
        }
        Ok(())
    });

    // Tell us when the server stops, with its kill reason after the prefix.
    let (tx, rx) = std::sync::mpsc::channel::<Message>();
    let watcher = node.port_fn(move |m| tx.send(m).unwrap());
    node.mon_send(&server, &watcher, aemp::msg!["down", &server])
        .forget();

    let request = Request::Checksum {
        reply: watcher.clone(),
        data: Octets::from(vec![1, 2, 250]),
    };
    println!("sending {}", Message::from_value(&request)?);
    node.snd_value(&server, &request)?;

    let answer: Sum = rx.recv_timeout(Duration::from_secs(5)).unwrap().decode()?;
    println!("answer: {} octets, sum {}", answer.len, answer.sum);

    node.snd_value(&server, &Request::Stop)?;
    let down = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let ((_, who), rest): ((String, PortId), Message) = down.decode_prefix()?;
    println!("{who} stopped: {}", Reason::from(rest));
    Ok(())
}
