//! The auth line (`<method>;<token>;<framing>`, the protocol notes §4 and §6):
//! computing, choosing and verifying auth tokens.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha3::{Digest, Sha3_512};
use subtle::ConstantTimeEq;

type HmacSha3 = Hmac<Sha3_512>;

/// An authentication method named in greetings and auth lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// Plain SHA3-512 of the handshake lines; only valid under TLS.
    TlsSha3_512,
    /// HMAC-SHA3-512 of the handshake lines keyed with the shared secret.
    HmacSha3_512,
    /// Empty token, only under TLS; accepted but never sent; link untrusted.
    TlsAnon,
    /// Hex of the secret itself; accepted but never sent.
    Cleartext,
}

impl AuthMethod {
    /// All methods, in Perl's default acceptance order.
    pub const ALL: [AuthMethod; 4] = [
        AuthMethod::TlsSha3_512,
        AuthMethod::HmacSha3_512,
        AuthMethod::TlsAnon,
        AuthMethod::Cleartext,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::TlsSha3_512 => "tls_sha3_512",
            AuthMethod::HmacSha3_512 => "hmac_sha3_512",
            AuthMethod::TlsAnon => "tls_anon",
            AuthMethod::Cleartext => "cleartext",
        }
    }

    /// Whether the method is only valid on a TLS connection.
    pub fn needs_tls(self) -> bool {
        matches!(self, AuthMethod::TlsSha3_512 | AuthMethod::TlsAnon)
    }

    /// Whether we ever send this method (`cleartext` and `tls_anon` are
    /// accepted only: sending them would leak the secret or prove nothing).
    pub fn sendable(self) -> bool {
        matches!(self, AuthMethod::TlsSha3_512 | AuthMethod::HmacSha3_512)
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AuthMethod {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        AuthMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or(())
    }
}

/// Builds the message M that a token covers: the **sender's** two greeting
/// lines, then the two lines the sender received, each followed by LF.
///
/// Lines are given without their line ending. A verifier passes the peer's
/// lines as `sender*` and its own as `receiver*`.
pub fn auth_message(sender1: &[u8], sender2: &[u8], receiver1: &[u8], receiver2: &[u8]) -> Vec<u8> {
    let mut m =
        Vec::with_capacity(sender1.len() + sender2.len() + receiver1.len() + receiver2.len() + 4);
    for line in [sender1, sender2, receiver1, receiver2] {
        m.extend_from_slice(line);
        m.push(b'\n');
    }
    m
}

/// Picks the method to send: the first of the peer's accepted methods (in
/// the peer's order) that we offer and may send now. `tls_*` needs active
/// TLS, `hmac_sha3_512` needs a secret. Unknown names are skipped.
pub fn choose_method(
    peer_accepts: &[String],
    our_offer: &[AuthMethod],
    tls: bool,
    have_secret: bool,
) -> Option<AuthMethod> {
    peer_accepts
        .iter()
        .filter_map(|name| name.parse::<AuthMethod>().ok())
        .find(|&m| {
            our_offer.contains(&m)
                && m.sendable()
                && (!m.needs_tls() || tls)
                && (m != AuthMethod::HmacSha3_512 || have_secret)
        })
}

/// Computes the lowercase-hex token for `method` over `message`.
///
/// Returns `None` when the method cannot be sent (`cleartext`, `tls_anon`)
/// or needs a secret that is missing.
pub fn make_token(method: AuthMethod, secret: Option<&[u8]>, message: &[u8]) -> Option<String> {
    match method {
        AuthMethod::HmacSha3_512 => Some(hex::encode(hmac_sha3_512(secret?, message))),
        AuthMethod::TlsSha3_512 => Some(hex::encode(Sha3_512::digest(message))),
        AuthMethod::TlsAnon | AuthMethod::Cleartext => None,
    }
}

fn hmac_sha3_512(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = new_hmac(key);
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn new_hmac(key: &[u8]) -> HmacSha3 {
    // HMAC accepts keys of any length (long keys are hashed), so this never fails.
    match HmacSha3::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// How far a verified peer is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The peer proved knowledge of the secret or a TLS identity plus the handshake.
    Trusted,
    /// `tls_anon`: only the TLS certificate vouches for the peer.
    Untrusted,
}

/// Checks a received token. `message` is M from the sender's perspective
/// (see [`auth_message`]). Comparisons are constant-time.
///
/// On failure returns a short reason that never includes secret material.
pub fn verify_token(
    method: AuthMethod,
    token: &str,
    secret: Option<&[u8]>,
    tls: bool,
    message: &[u8],
) -> Result<Trust, &'static str> {
    if method.needs_tls() && !tls {
        return Err("TLS auth method without TLS");
    }
    match method {
        AuthMethod::HmacSha3_512 => {
            let secret = secret.ok_or("no shared secret configured")?;
            let theirs = hex::decode(token).map_err(|_| "token is not hex")?;
            let mut mac = new_hmac(secret);
            mac.update(message);
            mac.verify_slice(&theirs).map_err(|_| "token mismatch")?;
            Ok(Trust::Trusted)
        }
        AuthMethod::TlsSha3_512 => {
            let theirs = hex::decode(token).map_err(|_| "token is not hex")?;
            let ours = Sha3_512::digest(message);
            ct_equal(&ours, &theirs)?;
            Ok(Trust::Trusted)
        }
        AuthMethod::Cleartext => {
            let secret = secret.ok_or("no shared secret configured")?;
            let theirs = hex::decode(token).map_err(|_| "token is not hex")?;
            ct_equal(secret, &theirs)?;
            Ok(Trust::Trusted)
        }
        AuthMethod::TlsAnon => Ok(Trust::Untrusted),
    }
}

fn ct_equal(a: &[u8], b: &[u8]) -> Result<(), &'static str> {
    // `ct_eq` on slices of different length returns false (leaking only the length).
    if bool::from(a.ct_eq(b)) {
        Ok(())
    } else {
        Err("token mismatch")
    }
}

/// A parsed auth line: `<method>;<token>;<framing>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthLine {
    /// The method name as sent (may be unknown to us).
    pub method: String,
    /// The token (hex or empty).
    pub token: String,
    /// The framing the sender of the line will use for its packets.
    pub framing: String,
}

impl AuthLine {
    /// Parses a line (without line ending). Needs exactly three fields.
    pub fn parse(line: &str) -> Option<AuthLine> {
        let mut it = line.split(';');
        let (method, token, framing) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        Some(AuthLine {
            method: method.to_owned(),
            token: token.to_owned(),
            framing: framing.to_owned(),
        })
    }

    /// Formats the line including the terminating LF.
    pub fn encode(&self) -> String {
        format!("{};{};{}\n", self.method, self.token, self.framing)
    }
}
