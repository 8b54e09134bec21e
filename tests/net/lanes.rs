//! Large messages do not stall small ones to other ports on the same
//! connection (issue #15), and the order per port holds.

use super::robustness::raw_client;
use super::*;
use aemp::msg;
use aemp::transport::framing::{Decoder, Framing};
use serde_json::Value;
use std::io::Read;

const BIG: usize = 64 << 10;

/// The unsent bytes of `a`'s connection to `peer`.
fn unsent(a: &Node, peer: &str) -> usize {
    a.stats()
        .peers
        .iter()
        .find(|p| p.node == peer)
        .map_or(0, |p| p.unsent)
}

/// A peer that does not read yet: large messages to one of its ports
/// queue in the sender, a small message to another port sent after them
/// arrives before most of them, a node-port request (`mon1`) keeps its
/// place in the stream (nothing overtakes it, it overtakes nothing), and
/// every large message arrives, in order.
#[test]
fn a_small_message_overtakes_queued_large_ones_to_another_port() {
    let a = node("a");
    let (mut s, framing) = raw_client(&a, "lanes/z");
    assert_eq!(framing, Framing::Json);
    let big = aemp::PortId::parse("lanes/z#big").unwrap();
    let small = aemp::PortId::parse("lanes/z#small").unwrap();
    let watched = aemp::PortId::parse("lanes/z#watched").unwrap();
    let text = "x".repeat(BIG);
    // Until the socket is full and eight large packets wait in the sender
    // (a bound well below `unsent_limit`, in case the kernel takes more
    // than expected: then the test fails, it does not loop). Eight, not
    // fewer: the kernel's buffers may still grow and take a few more
    // before the small message is sent.
    let mut n = 0u64;
    while unsent(&a, "lanes/z") < 8 * BIG {
        assert!(n < 1000, "{n} large messages sent and nothing queued");
        a.snd(&big, msg!["big", n, &text]);
        n += 1;
    }
    a.snd(&small, msg!["small", 1]);
    a.mon(&watched, |_| {}).forget();
    a.snd(&small, msg!["small", 2]);
    a.snd(&big, msg!["big", n, &text]);

    // Now read: the order in which the packets arrive.
    let mut d = Decoder::new(Framing::Json);
    let mut got: Vec<String> = Vec::new();
    let mut buf = vec![0u8; 256 << 10];
    let last = format!("big {n}");
    while !got.contains(&last) {
        let k = s.read(&mut buf).expect("read (5 s time-out)");
        assert!(k > 0, "closed after {got:?}");
        d.feed(&buf[..k]);
        while let Some(p) = d.next_packet().unwrap() {
            let arg = |i: usize| match p.get(i) {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            match p[0].as_str() {
                Some("big") => got.push(format!("big {}", arg(2))),
                Some("small") => got.push(format!("small {}", arg(2))),
                // A heartbeat, should the test be slow: not ours.
                Some("") if arg(1) == "time" => {}
                Some("") => got.push(format!("node {} {}", arg(1), arg(2))),
                _ => panic!("unexpected packet {p:?}"),
            }
        }
    }
    let at = |what: &str| {
        got.iter()
            .position(|g| g == what)
            .unwrap_or_else(|| panic!("{what} missing from {got:?}"))
    };
    // Every large message, in order.
    let bigs: Vec<&String> = got.iter().filter(|g| g.starts_with("big ")).collect();
    let want: Vec<String> = (0..=n).map(|i| format!("big {i}")).collect();
    assert_eq!(bigs, want.iter().collect::<Vec<_>>());
    // The first small message overtook some of the large ones still
    // queued (at least eight were when it was sent; one may have been
    // being written, a few may have gone to the kernel since).
    let overtaken = got[at("small 1")..]
        .iter()
        .filter(|g| g.starts_with("big ") && **g != last)
        .count();
    assert!(overtaken >= 2, "small 1 overtook {overtaken}: {got:?}");
    // The monitor request overtook nothing sent before it; the small
    // message sent after it did not overtake it.
    let mon = at("node mon1 watched");
    assert_eq!(at(&format!("big {}", n - 1)) + 1, mon, "{got:?}");
    assert!(at("small 2") > mon, "{got:?}");
    assert!(at(&last) > at("small 2"), "{got:?}");
}

/// Two real nodes: a stream of large messages to one port, paced by
/// `snd_wait`, while small messages to another port come and go; every
/// large message arrives once, in order, and so does every small one.
#[test]
fn a_stream_of_large_messages_keeps_its_order_beside_small_ones() {
    let (a, b) = pair();
    stream_beside_small_ones(&a, &b);
}

/// The same under TLS (the reactor encrypts what it takes: the small
/// lane whole, or one large packet).
#[test]
fn a_stream_of_large_messages_keeps_its_order_beside_small_ones_under_tls() {
    let cert = super::tls::self_signed();
    let a = super::tls::tls_node("a", Some(&cert), None);
    let b = super::tls::tls_node("b", Some(&cert), None);
    introduce(&a, &b);
    stream_beside_small_ones(&a, &b);
}

fn stream_beside_small_ones(a: &Node, b: &Node) {
    let (big, bigs) = sink(b);
    let (small, smalls) = sink(b);
    let text = "y".repeat(BIG);
    let n = 120u64;
    std::thread::scope(|sc| {
        sc.spawn(|| {
            for i in 0..n {
                a.snd_wait(&big, msg![i, &text], LIMIT).unwrap();
            }
        });
        for j in 0..n / 4 {
            a.snd(&small, msg![j]);
            assert_eq!(recv(&smalls), msg![j]);
        }
    });
    for i in 0..n {
        assert_eq!(recv(&bigs), msg![i, &text]);
    }
    nothing(&bigs, 20);
    nothing(&smalls, 0);
}
