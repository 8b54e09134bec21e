//! What arrives on a connection, on the reactor thread: bytes (through
//! TLS once it runs) into the handshake, the peer's greeting weighed by
//! the duplicate-connection rule (`duplicate.rs`), the handshake's end
//! (the connection goes up: `Net::established`), then the data phase's
//! packets routed into port inboxes (`requests.rs`). Reading the socket
//! itself and closing connections stay in `reactor.rs`.

use super::conn::{Conn, Phase};
use super::duplicate::{self, Decision};
use super::follow::{Reader, State};
use super::outbox::Outbox;
use super::reactor::{over_limit, Reactor};
use super::remote::Remote;
use super::tls::Tls;
use super::{requests, Net};
use crate::transport::greeting::{Greeting, PROTOCOL};
use crate::transport::{Decoder, Established, Event};
use mio::Token;
use std::os::fd::AsFd;
use std::sync::{Arc, Weak};
use std::time::Instant;

impl Reactor {
    /// Bytes arrived on `conn` (ciphertext once TLS runs), lent out of
    /// its slot (see `Reactor::conn_event`).
    pub(super) fn received(
        &mut self,
        token: Token,
        conn: &mut Conn,
        data: &[u8],
    ) -> Result<(), String> {
        match &conn.phase {
            // Went up earlier in this read.
            Phase::Up { reader, .. } => {
                let reader = reader.clone();
                return received_up(&self.net, conn, &mut reader.lock(), data);
            }
            // A data connection, leaving the reactor after this read.
            Phase::Data { .. } => return data_received(conn, data, true),
            _ => {}
        }
        let Some(tls) = conn.tls.as_mut() else {
            return self.received_plain(token, conn, data);
        };
        let (plain, ready) = decrypt(tls, &mut conn.wbuf, data)?;
        let closed = tls.peer_closed();
        if ready {
            if let Phase::Handshake(hs) = &mut conn.phase {
                hs.tls_established().map_err(|e| e.to_string())?;
                let out = hs.take_output();
                conn.send_plain(&out)?;
            }
        }
        if !plain.is_empty() {
            self.received_plain(token, conn, &plain)?;
        }
        match &conn.phase {
            // A data connection's reader meets the close after the data.
            Phase::Data { .. } => Ok(()),
            _ if closed => Err(TLS_CLOSED.into()),
            _ => Ok(()),
        }
    }

    /// Plaintext arrived on `conn`.
    fn received_plain(&mut self, token: Token, conn: &mut Conn, data: &[u8]) -> Result<(), String> {
        let events = match &mut conn.phase {
            Phase::Handshake(hs) => {
                let events = hs.feed(data).map_err(|e| e.to_string());
                let out = hs.take_output();
                conn.send_plain(&out)?;
                events?
            }
            Phase::Up { reader, .. } => {
                let reader = reader.clone();
                return packets(&self.net, conn, &mut reader.lock(), data);
            }
            Phase::Data { .. } => return data_received(conn, data, false),
        };
        for ev in events {
            match ev {
                Event::PeerGreeting { greeting, .. } if greeting.protocol != PROTOCOL => {
                    data_greeting(conn, &greeting)?
                }
                Event::PeerGreeting { .. } if conn.dataconn.is_some() => {}
                Event::PeerGreeting { node_id, .. } => self.greeting(token, conn, node_id)?,
                Event::StartTls { client, ciphertext } => {
                    let cfg = self
                        .net
                        .tls
                        .as_ref()
                        .ok_or("TLS requested, but this node has no certificate")?;
                    let mut tls = Box::new(Tls::start(cfg, client)?);
                    let hello = tls.take_output();
                    conn.wbuf.extend_from_slice(&hello);
                    conn.tls = Some(tls);
                    // The handshake stops at StartTls: this was the last event.
                    return self.received(token, conn, &ciphertext);
                }
                Event::Established(est) => return self.established(token, conn, &est),
            }
        }
        Ok(())
    }

    /// The handshake completed: the connection goes up (unless the node
    /// is connected already, or a loss is still being processed) and
    /// routes what arrived with the handshake's end.
    fn established(
        &mut self,
        token: Token,
        conn: &mut Conn,
        est: &Established,
    ) -> Result<(), String> {
        if conn.dataconn.is_some() {
            // Never the message protocol: handed out of the reactor.
            conn.phase = Phase::Data {
                peer: est.peer_node_id.clone(),
                leftover: est.leftover.clone(),
            };
            return Ok(());
        }
        let remote = match &conn.peer {
            Some(r) => r.clone(),
            None => self.net.remote(&est.peer_node_id),
        };
        // Senders write directly when the connection is idle
        // (not under TLS: the session lives here).
        let writer = if conn.tls.is_some() {
            None
        } else {
            conn.sock
                .as_fd()
                .try_clone_to_owned()
                .map(std::net::TcpStream::from)
                .ok()
        };
        let out = self
            .net
            .established(&remote, token, est.send_framing, writer)
            .ok_or("a connection to that node is already up")?;
        self.dials.remove(remote.id.as_str());
        self.net.forget_failures(remote.id.as_str(), &conn.addr);
        self.net.peer_up(remote.id.as_str());
        let mut dec = Box::new(Decoder::new(est.recv_framing));
        dec.feed(&est.leftover);
        out.received(est.leftover.len(), conn.last_rx);
        out.set_preamble(conn.wbuf.len() - conn.wpos);
        let over = out.is_closed();
        let unsent = out.unsent();
        let reader = Arc::new(self.reader(token, conn, &remote, &out, dec)?);
        if reader.followable() {
            out.set_follow(Arc::downgrade(&reader) as Weak<dyn crate::busy::Follow>);
        }
        conn.phase = Phase::Up {
            remote,
            out,
            reader: reader.clone(),
        };
        if over {
            // What was queued while connecting passed the limit.
            return Err(over_limit(unsent, self.net.unsent_limit));
        }
        let routed = packets(&self.net, conn, &mut reader.lock(), &[]);
        routed
    }

    /// The reading side of a connection coming up (`follow.rs`):
    /// followable unless under TLS, the outbox's handle on the socket then
    /// registered with the poll in place of the reactor's.
    fn reader(
        &self,
        token: Token,
        conn: &mut Conn,
        remote: &Arc<Remote>,
        out: &Arc<Outbox>,
        dec: Box<Decoder>,
    ) -> Result<Reader, String> {
        if out.socket().is_some() {
            let _ = self.poll.registry().deregister(&mut conn.sock);
        }
        Reader::new(
            token,
            self.registry.clone(),
            &self.net,
            remote.clone(),
            out.clone(),
            dec,
        )
        .map_err(|e| format!("cannot register the connection: {e}"))
    }

    /// The peer's greeting line 1 passed: decide whether this connection
    /// may go on (the duplicate-connection rule: `duplicate.rs`).
    fn greeting(&mut self, token: Token, conn: &mut Conn, node_id: String) -> Result<(), String> {
        let remote = self.net.remote(&node_id);
        if let Some(None) = conn.dialed {
            self.net.seed_greeted(&conn.addr, &node_id);
        }
        if let Some(Some(expected)) = &conn.dialed {
            if expected.id.as_str() != node_id {
                return Err(format!(
                    "expected node {} but {node_id} answered",
                    expected.id
                ));
            }
        }
        let link = self.net.greeting_link(&remote);
        let now = Instant::now();
        let existing = match link {
            duplicate::Link::Up(old) if old != token => self.conns.get(old),
            _ => None,
        };
        let racing = self
            .greeted
            .get(&node_id)
            .filter(|&&other| other != token)
            .and_then(|&other| self.conns.get(other));
        let decision = duplicate::decide(&duplicate::Meeting {
            us: self.net.id.as_str(),
            peer: &node_id,
            this: token,
            ours: conn.dialed.is_some(),
            link,
            existing: existing.map(|c| duplicate::Existing {
                last_rx: c.last_heard(),
                probed: c.probed,
            }),
            racing: racing.map(|c| duplicate::Racing {
                auth_sent: matches!(&c.phase, Phase::Handshake(h) if h.auth_sent()),
                ours: c.dialed.is_some(),
            }),
            now,
            connect_interval: self.net.connect_interval,
        });
        if let (Some(None), true) = (&conn.dialed, decision.link_free()) {
            // Node::connect: now we know whose address this is.
            if let Ok(a) = conn.sock.peer_addr() {
                self.net.learn(&node_id, &conn.addr, vec![a]);
            }
        }
        self.duplicate(decision, link, self.greeted.get(&node_id).copied(), now);
        if let Some(why) = decision.refusal() {
            return Err(why.into());
        }
        self.greeted.insert(node_id, token);
        conn.peer = Some(remote);
        Ok(())
    }

    /// Acts on the duplicate-connection rule's decision on the other
    /// connections with the node: the one `link` is up over, the racing
    /// handshake `greeted`.
    fn duplicate(
        &mut self,
        decision: Decision,
        link: duplicate::Link,
        greeted: Option<Token>,
        now: Instant,
    ) {
        match (decision, link, greeted) {
            (Decision::RefuseSwitch, duplicate::Link::Up(old), _) => {
                if let Some(c) = self.conns.remove(old) {
                    self.finish(old, c, duplicate::SWITCHED);
                }
            }
            (Decision::RefuseKeepExisting { mark }, duplicate::Link::Up(old), _) => {
                let Some(c) = self.conns.get_mut(old) else {
                    return;
                };
                if mark {
                    c.probed = Some(now);
                }
                if let Phase::Up { out, .. } = &c.phase {
                    let pushed = out.probe();
                    self.pushed(old, pushed);
                }
            }
            (Decision::AcceptCloseRacing, _, Some(other)) => {
                if let Some(c) = self.conns.remove(other) {
                    self.finish(other, c, duplicate::RACING);
                }
            }
            _ => {}
        }
    }
}

/// Bytes arrived on `conn` in its data phase (ciphertext under TLS).
/// Needs only the net, so the reactor leaves the connection in its slot
/// (the hot path: no move, no lookup but the slab's).
pub(super) fn received_up(
    net: &Arc<Net>,
    conn: &mut Conn,
    st: &mut State,
    data: &[u8],
) -> Result<(), String> {
    if let Phase::Up { out, .. } = &conn.phase {
        out.received(data.len(), conn.last_rx);
    }
    let Some(tls) = conn.tls.as_mut() else {
        return packets(net, conn, st, data);
    };
    let (plain, _) = decrypt(tls, &mut conn.wbuf, data)?;
    let closed = tls.peer_closed();
    if !plain.is_empty() {
        packets(net, conn, st, &plain)?;
    }
    if closed {
        return Err(TLS_CLOSED.into());
    }
    Ok(())
}

/// Why a connection whose peer sent its TLS close notification ends.
const TLS_CLOSED: &str = "TLS session closed by peer";

/// Feeds ciphertext to a TLS session; what the session answers goes to
/// `wbuf`. Returns the plaintext, and whether the session became ready.
fn decrypt(tls: &mut Tls, wbuf: &mut Vec<u8>, data: &[u8]) -> Result<(Vec<u8>, bool), String> {
    let mut plain = Vec::new();
    let ready = tls.feed(data, &mut plain)?;
    let cipher = tls.take_output();
    wbuf.extend_from_slice(&cipher);
    Ok((plain, ready))
}

/// Routes what a thread following `conn` left to the reactor (a packet
/// for the node port, and every complete packet buffered after it in the
/// decoder), then every complete packet in `data` (read in place; the
/// start of a packet it ends in is kept). `st` is the connection's
/// reading state, locked by the caller.
pub(super) fn packets(
    net: &Arc<Net>,
    conn: &mut Conn,
    st: &mut State,
    mut data: &[u8],
) -> Result<(), String> {
    let Phase::Up { remote, out, .. } = &conn.phase else {
        return Ok(());
    };
    let node = net.node().ok_or("the local node is gone")?;
    let _batch = crate::context::defer_schedules();
    if let Some(packet) = st.handback.take() {
        requests::route(net, &node, remote, packet)?
    }
    loop {
        match st.dec.next_packet_from(&mut data) {
            Ok(Some(packet)) => {
                out.received_packet();
                requests::route(net, &node, remote, packet)?
            }
            Ok(None) => return Ok(()),
            // One bad value never takes the connection down.
            Err(e) if !e.is_fatal() => {
                log::warn!("{}: from {}: {e}", net.id, remote.id)
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// A peer greeted with an extension protocol (the handshake accepts only
/// `aemp-dataconn`): a data connection, outside the duplicate rule.
fn data_greeting(conn: &mut Conn, greeting: &Greeting) -> Result<(), String> {
    match greeting.get("dataconn_id") {
        Some(id) if !id.is_empty() => {
            conn.dataconn = Some(id.to_string());
            Ok(())
        }
        _ => Err(format!(
            "{} greeting from {} without a dataconn_id",
            greeting.protocol, greeting.node_id
        )),
    }
}

/// Bytes arrived on a data connection after its handshake, in the same
/// read (`raw`: as read, ciphertext under TLS): kept for its reader.
fn data_received(conn: &mut Conn, data: &[u8], raw: bool) -> Result<(), String> {
    let plain = match conn.tls.as_mut() {
        Some(tls) if raw => decrypt(tls, &mut conn.wbuf, data)?.0,
        _ => data.to_vec(),
    };
    if let Phase::Data { leftover, .. } = &mut conn.phase {
        leftover.extend_from_slice(&plain);
    }
    Ok(())
}
