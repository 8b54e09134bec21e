//! A connection's two send lanes, inside its outbox (`outbox.rs`), so a
//! stream of large messages to one port does not make small messages to
//! other ports wait behind the whole backlog.
//!
//! - The small lane: packets encoded back to back, taken whole.
//! - The bulk lane: large packets (at least [`BULK_MIN`] bytes encoded),
//!   one buffer each, taken one at a time, and only when the small lane
//!   is empty.
//!
//! So a small packet waits for at most the packet being written (a
//! partially written packet always finishes first: it is a byte stream),
//! not for the queue. The order rules:
//! - per destination port, packets leave in the order they were pushed: a
//!   packet whose port has packets in the bulk lane goes there too, behind
//!   them, whatever its size;
//! - a packet to the node port (`""`: kil, mon, spawn, the db protocol,
//!   heartbeats) keeps its place in the stream: it goes to the bulk lane
//!   when that is not empty (overtaking nothing), and while one is there
//!   every packet goes there behind it (nothing overtakes it);
//! - anything pushed to the small lane leaves before anything pushed to
//!   the bulk lane after it (the bulk lane is taken only when the small
//!   lane is empty).
//!
//! Only packets to different ports, neither of them the node port, are
//! reordered: a small one overtakes large ones queued before it.

use std::collections::{HashMap, VecDeque};

/// Encoded packets at least this large go to the bulk lane.
pub(crate) const BULK_MIN: usize = 16 << 10;

/// Buffers above this size are freed when the connection goes idle.
const KEEP_IDLE: usize = 4 << 20;

#[derive(Default)]
pub(crate) struct Lanes {
    /// The small lane: encoded packets back to back. Senders encode into
    /// it; [`Lanes::sort`] moves a packet to the bulk lane.
    pub(crate) small: Vec<u8>,
    /// The bulk lane: (port name, encoded packet), in push order.
    bulk: VecDeque<(String, Vec<u8>)>,
    /// The bytes in `bulk`.
    bulk_bytes: usize,
    /// Per port name (`""`: the node port), its packets in `bulk`.
    bulk_ports: HashMap<String, usize>,
}

impl Lanes {
    /// Whether both lanes are empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.small.is_empty() && self.bulk.is_empty()
    }

    /// The bytes in both lanes.
    pub(crate) fn len(&self) -> usize {
        self.small.len() + self.bulk_bytes
    }

    /// Whether a packet to port `name` must queue behind the bulk lane,
    /// whatever its size (see the order rules above).
    fn must_follow_bulk(&self, name: &str) -> bool {
        !self.bulk.is_empty()
            && (name.is_empty()
                || self.bulk_ports.contains_key(name)
                || self.bulk_ports.contains_key(""))
    }

    /// Puts the packet to port `name` just encoded at the end of the
    /// small lane (from `start` on) into its lane.
    pub(crate) fn sort(&mut self, name: &str, start: usize) {
        if self.small.len() - start < BULK_MIN && !self.must_follow_bulk(name) {
            return;
        }
        let packet = if start == 0 {
            // No copy: the small lane's buffer goes (a spare comes back
            // from the reactor in `take`).
            std::mem::take(&mut self.small)
        } else {
            self.small.split_off(start)
        };
        self.bulk_bytes += packet.len();
        match self.bulk_ports.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                self.bulk_ports.insert(name.to_string(), 1);
            }
        }
        self.bulk.push_back((name.to_string(), packet));
    }

    /// For the reactor: moves into `wbuf` (empty) what to write next: the
    /// whole small lane, or if it is empty the bulk lane's first packet.
    /// Nothing if both are empty.
    pub(crate) fn take(&mut self, wbuf: &mut Vec<u8>) {
        if !self.small.is_empty() || self.bulk.is_empty() {
            // The reactor's emptied buffer becomes the senders'. While a
            // stream flows the two trade places and keep their size (a
            // fresh buffer costs a page fault per 4 KiB sent); when both
            // are empty (idle), large ones are freed.
            std::mem::swap(&mut self.small, wbuf);
            if wbuf.is_empty() {
                for b in [&mut self.small, wbuf] {
                    if b.capacity() > KEEP_IDLE {
                        *b = Vec::new();
                    }
                }
            }
            return;
        }
        let Some((name, packet)) = self.bulk.pop_front() else {
            return;
        };
        self.bulk_bytes -= packet.len();
        if let Some(n) = self.bulk_ports.get_mut(&name) {
            *n -= 1;
            if *n == 0 {
                self.bulk_ports.remove(&name);
            }
        }
        let spare = std::mem::replace(wbuf, packet);
        if spare.capacity() > self.small.capacity() {
            self.small = spare;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::framing::encode_packet;
    use crate::transport::{Decoder, Framing};
    use serde_json::Value;

    const BIG: usize = BULK_MIN + 100;

    /// Pushes `[name, tag, filler]` as the outbox does when the
    /// connection is busy; a `big` one is at least [`BULK_MIN`] encoded.
    fn push(l: &mut Lanes, name: &str, tag: &str, big: bool) {
        let filler = if big { "x".repeat(BIG) } else { String::new() };
        let start = l.small.len();
        let msg = [Value::from(tag), Value::from(filler)];
        encode_packet(Framing::Json, name, &msg, &mut l.small).unwrap();
        l.sort(name, start);
    }

    /// Everything the reactor takes, in order, as `port:tag`; `between`
    /// runs after each take (more pushes while the reactor writes).
    fn drain(l: &mut Lanes, mut between: impl FnMut(&mut Lanes)) -> Vec<String> {
        let mut d = Decoder::new(Framing::Json);
        let mut out = Vec::new();
        loop {
            let mut w = Vec::new();
            l.take(&mut w);
            if w.is_empty() {
                break;
            }
            d.feed(&w);
            while let Some(p) = d.next_packet().unwrap() {
                out.push(format!(
                    "{}:{}",
                    p[0].as_str().unwrap(),
                    p[1].as_str().unwrap()
                ));
            }
            between(l);
        }
        assert!(l.is_empty());
        assert_eq!((l.len(), l.bulk_ports.len()), (0, 0));
        out
    }

    #[test]
    fn large_buffers_trade_places_while_busy_and_are_freed_when_idle() {
        let mut l = Lanes::default();
        // A stream: the reactor wrote its large buffer and takes the next
        // batch; its emptied buffer goes to the senders, capacity kept.
        let mut wbuf = Vec::with_capacity(KEEP_IDLE * 2);
        l.small.extend_from_slice(b"batch");
        l.take(&mut wbuf);
        assert_eq!(wbuf, b"batch");
        assert_eq!(l.small.capacity(), KEEP_IDLE * 2);
        // Idle: nothing to take, the large buffer is freed.
        wbuf.clear();
        l.take(&mut wbuf);
        assert!(wbuf.is_empty());
        assert!(wbuf.capacity() <= KEEP_IDLE && l.small.capacity() <= KEEP_IDLE);
    }

    #[test]
    fn a_small_packet_overtakes_bulk_to_other_ports() {
        let mut l = Lanes::default();
        push(&mut l, "a", "1", true);
        push(&mut l, "a", "2", true);
        push(&mut l, "b", "1", false);
        assert_eq!(l.len(), l.small.len() + l.bulk_bytes);
        assert!(l.bulk_bytes >= 2 * BULK_MIN);
        let mut takes = 0;
        let got = drain(&mut l, |l| {
            // Pushed while the reactor writes the first large packet.
            takes += 1;
            if takes == 2 {
                push(l, "c", "1", false);
            }
        });
        assert_eq!(got, ["b:1", "a:1", "c:1", "a:2"]);
    }

    #[test]
    fn the_order_per_port_holds_whatever_the_sizes() {
        let mut l = Lanes::default();
        push(&mut l, "a", "1", false);
        push(&mut l, "a", "2", true);
        push(&mut l, "a", "3", false);
        push(&mut l, "b", "1", true);
        push(&mut l, "a", "4", true);
        push(&mut l, "b", "2", false);
        push(&mut l, "c", "1", false);
        let got = drain(&mut l, |_| {});
        assert_eq!(got, ["a:1", "c:1", "a:2", "a:3", "b:1", "a:4", "b:2"]);
        let a: Vec<_> = got.iter().filter(|s| s.starts_with("a:")).collect();
        assert_eq!(a, ["a:1", "a:2", "a:3", "a:4"]);
    }

    #[test]
    fn a_node_port_packet_never_overtakes_nor_is_overtaken() {
        let mut l = Lanes::default();
        push(&mut l, "b", "1", false);
        push(&mut l, "a", "1", true);
        // Behind the bulk lane: overtakes nothing...
        push(&mut l, "", "kil", false);
        // ...and nothing overtakes it, whatever its port.
        push(&mut l, "c", "1", false);
        push(&mut l, "b", "2", false);
        let got = drain(&mut l, |_| {});
        assert_eq!(got, ["b:1", "a:1", ":kil", "c:1", "b:2"]);
        // With the bulk lane empty, a node-port packet takes the small
        // lane, behind what is there; a large one after it follows it.
        push(&mut l, "b", "3", false);
        push(&mut l, "", "mon", false);
        push(&mut l, "a", "2", true);
        push(&mut l, "c", "2", false);
        let got = drain(&mut l, |_| {});
        assert_eq!(got, ["b:3", ":mon", "c:2", "a:2"]);
    }

    #[test]
    fn a_large_node_port_packet_is_a_barrier_too() {
        let mut l = Lanes::default();
        push(&mut l, "", "g_set", true);
        push(&mut l, "b", "1", false);
        let got = drain(&mut l, |_| {});
        assert_eq!(got, [":g_set", "b:1"]);
    }
}
