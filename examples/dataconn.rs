//! Data connections between two nodes: a thread sends 256 MiB through
//! one and reports the speed; then the callback form, from a port, and a
//! failed one (no such function on the other node), which kills the port
//! with the `AnyEvent::MP::DataConn` reason. Stops by itself.
//!
//! ```text
//! cargo run --release --example dataconn
//! ```

use aemp::{msg, Config, Node};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const BYTES: usize = 256 << 20;

fn node(id: &str, secret: &str) -> Node {
    Node::with_config(Config::new(id).bind("127.0.0.1:0").secret(secret)).expect("start a node")
}

fn main() {
    env_logger::init();
    let a = node("dc-a/%u", "example");
    let b = node("dc-b/%u", "example");
    a.add_address(b.id(), &b.listen_addrs()[0].to_string())
        .unwrap();

    // On b: count what arrives, answer with the count.
    b.register_dataconn("example::count", |args, mut conn| {
        let mut total = 0u64;
        let mut buf = vec![0u8; 256 << 10];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            total += n as u64;
        }
        println!("b: {} sent {total} bytes", args[0].as_str().unwrap_or("?"));
        let _ = conn.write_all(&total.to_le_bytes());
    })
    .unwrap();

    // The blocking form, from this thread.
    let t = Instant::now();
    let mut conn = a
        .data_connect(b.id(), Duration::from_secs(10), "example::count", msg!["a"])
        .expect("data connection");
    let chunk = vec![7u8; 64 << 10];
    for _ in 0..BYTES / chunk.len() {
        conn.write_all(&chunk).unwrap();
    }
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let mut count = [0u8; 8];
    conn.read_exact(&mut count).unwrap();
    assert_eq!(u64::from_le_bytes(count), BYTES as u64);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "a: {} MiB in {secs:.2} s: {:.0} MB/s",
        BYTES >> 20,
        BYTES as f64 / secs / 1e6
    );

    // The callback form runs in port context; `cb` gets the connection.
    let (tx, rx) = crossbeam_channel::unbounded();
    let port = a.port_fn(|_| {});
    let done = tx.clone();
    let _guard = a.mon(&port, move |reason| {
        let _ = done.send(format!("port killed: {reason}"));
    });
    let (an, bid) = (a.clone(), b.id().clone());
    a.peval(&port, move || {
        an.data_connect_cb(
            &bid,
            Duration::from_secs(10),
            "example::count",
            msg!["cb"],
            move |mut c| {
                c.write_all(b"hello").unwrap();
                c.shutdown(std::net::Shutdown::Write).unwrap();
                let mut count = [0u8; 8];
                c.read_exact(&mut count).unwrap();
                let _ = tx.send(format!("callback: b counted {}", u64::from_le_bytes(count)));
            },
        )
        .expect("in port context");
    });
    println!("a: {}", rx.recv_timeout(Duration::from_secs(20)).unwrap());

    // A failed one: b has no such function, so it kills our port (here
    // data_connect's own) with the AnyEvent::MP::DataConn reason.
    match a.data_connect(b.id(), Duration::from_secs(5), "example::missing", msg![]) {
        Ok(_) => println!("a: unexpectedly connected"),
        Err(e) => println!("a: {e}"),
    }
}
