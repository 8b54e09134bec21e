//! Closing, on the reactor thread: one connection ([`Reactor::finish`]:
//! its monitors fire if it was up, a failed handshake's cause is noted),
//! and the reactor's two ends: at once ([`Reactor::shutdown`], the node
//! dropped) or cleanly ([`Reactor::close`], the node shuts down: what
//! each connection holds is written and read by the peer first).

use super::conn::{Conn, Phase};
use super::reactor::Reactor;
use super::remote::LOCAL_SHUTDOWN;
use mio::Token;
use std::time::{Duration, Instant};

/// How long a clean close ([`Reactor::close`]) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Reactor {
    /// The clean end (the node shuts down): writes what every working
    /// connection holds, closes our end for writing and waits for the peer
    /// to close its end (so it read everything: closing with its input
    /// unread would send a reset, which may make it drop what we sent),
    /// all within [`CLOSE_TIMEOUT`]; then closes everything like
    /// [`shutdown`](Self::shutdown).
    pub(super) fn close(mut self) {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let left = || {
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        };
        let up: Vec<Token> = self
            .conns
            .iter()
            .filter(|c| matches!(c.phase, Phase::Up { .. }))
            .map(|c| c.token)
            .collect();
        let mut closing = Vec::new();
        for token in up {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            if let Phase::Up { reader, .. } = &conn.phase {
                // Before the socket blocks: no thread may read it then.
                reader.close();
            }
            let sock = socket2::SockRef::from(&conn.sock);
            if sock.set_nonblocking(false).is_err() || sock.set_write_timeout(Some(left())).is_err()
            {
                continue;
            }
            if let Err(e) = conn.flush() {
                log::debug!("{}: closing {}: {e}", self.net.id, conn.who());
                continue;
            }
            let _ = conn.sock.shutdown(std::net::Shutdown::Write);
            closing.push(conn.token);
        }
        let mut sink = [0u8; 4096];
        for token in closing {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            let sock = socket2::SockRef::from(&conn.sock);
            while sock.set_read_timeout(Some(left())).is_ok()
                && Instant::now() < deadline
                && matches!(std::io::Read::read(&mut &conn.sock, &mut sink), Ok(1..))
            {}
        }
        self.shutdown();
    }

    pub(super) fn shutdown(mut self) {
        let conns: Vec<Conn> = self.conns.drain().collect();
        for conn in conns {
            self.finish(conn.token, conn, LOCAL_SHUTDOWN);
        }
        for (_, dial) in std::mem::take(&mut self.dials) {
            self.net.fail(&dial.remote, None, LOCAL_SHUTDOWN);
        }
    }

    /// Closes a connection (already removed from `conns`).
    pub(super) fn finish(&mut self, token: Token, mut conn: Conn, why: &str) {
        if let (Some(Some(remote)), Phase::Handshake(_)) = (&conn.dialed, &conn.phase) {
            self.attempt_failed(remote.id.as_str(), token);
        }
        if let Phase::Up { reader, .. } = &conn.phase {
            // No thread reads it from now on (`follow.rs`).
            reader.close();
        }
        let _ = self.poll.registry().deregister(&mut conn.sock);
        if matches!(conn.phase, Phase::Handshake(_)) {
            if why.starts_with("authentication failure") {
                // Our auth line, if still queued, tells the peer that the
                // secrets differ (its check of our token fails too), so it
                // can report that instead of a bare close: write it, best
                // effort. Never for other failures: a handshake the peer
                // could complete must not come up and die at once.
                let pending = conn.wbuf.get(conn.wpos..).unwrap_or_default();
                let _ = std::io::Write::write(&mut conn.sock, pending);
            }
            // Closing with unread input sends a reset, which makes the
            // peer drop what we sent before: read that input first (at
            // most 64 KiB: a peer that keeps sending gets its reset).
            let mut sink = [0u8; 4096];
            for _ in 0..16 {
                if !matches!(std::io::Read::read(&mut &conn.sock, &mut sink), Ok(1..)) {
                    break;
                }
            }
        }
        // Senders may hold a second handle on the socket: shut it down so
        // the peer sees the end now.
        let _ = conn.sock.shutdown(std::net::Shutdown::Both);
        if let Some(peer) = &conn.peer {
            if self.greeted.get(peer.id.as_str()) == Some(&token) {
                self.greeted.remove(peer.id.as_str());
            }
        }
        if let Some(id) = conn.dataconn.take() {
            // Never a node's connection: only its data connection fails.
            log::info!(
                "{}: data connection {id} with {} failed: {why}",
                self.net.id,
                conn.addr
            );
            self.data_outcome(&id, token);
            self.net.data_handoff(&id, Err(why.to_string()));
            return;
        }
        match &conn.phase {
            Phase::Up { remote, out, .. } => {
                out.close();
                self.net.fail(remote, Some(token), why)
            }
            Phase::Data { .. } => {}
            Phase::Handshake(_) if why.starts_with("simultaneous") => {
                log::debug!(
                    "{}: closing connection with {}: {why}",
                    self.net.id,
                    conn.who()
                )
            }
            Phase::Handshake(_) => {
                log::warn!(
                    "{}: connection with {} failed: {why}",
                    self.net.id,
                    conn.who()
                );
                let node = match (&conn.peer, &conn.dialed) {
                    (Some(r), _) | (None, Some(Some(r))) => Some(r.id.as_str()),
                    _ => None,
                };
                self.net.note_failure(node, &conn.addr, why);
            }
        }
    }
}
