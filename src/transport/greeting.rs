//! The two greeting lines (protocol notes §2–3): line 1
//! `aemp;1;<nodeid>;<auths>;<framings>;k=v...` and the nonce line.

use base64::Engine as _;

use super::error::{Error, Result};

/// The protocol version we speak.
pub const PROTOCOL_VERSION: &str = "1";

/// The base protocol id; extensions are `aemp-<word>`.
pub const PROTOCOL: &str = "aemp";

/// Greeting line 1, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// Field 1: `aemp` or an extension id like `aemp-dataconn`.
    pub protocol: String,
    /// Field 2: the protocol version (only `1` is valid; see [`Greeting::parse`]).
    pub version: String,
    /// Field 3: the sender's node ID.
    pub node_id: String,
    /// Field 4: auth methods the sender accepts, preferred first.
    pub auths: Vec<String>,
    /// Field 5: framings the sender accepts, preferred first.
    pub framings: Vec<String>,
    /// The `key=value` fields in order, values unescaped. A field without
    /// `=` has an empty value.
    pub kv: Vec<(String, String)>,
}

impl Greeting {
    /// Parses line 1 (without line ending). Checks the shape, the node ID
    /// (non-empty, no `#;,`), and rejects any version but `1` with
    /// [`Error::VersionMismatch`]. The protocol id is only checked to start
    /// with `aemp`; whether we speak it is the caller's decision.
    pub fn parse(line: &[u8]) -> Result<Greeting> {
        let bad = |problem: &str| Error::BadGreeting {
            problem: problem.to_owned(),
            input: shorten(line),
        };
        let text = std::str::from_utf8(line).map_err(|_| bad("not UTF-8"))?;
        let fields: Vec<&str> = text.split(';').collect();
        if fields.len() < 5 {
            return Err(bad(&format!("{} fields, need at least 5", fields.len())));
        }
        let protocol = fields[0];
        if protocol != PROTOCOL && !protocol.starts_with("aemp-") {
            return Err(bad("not an aemp greeting"));
        }
        if fields[1] != PROTOCOL_VERSION {
            return Err(Error::VersionMismatch(fields[1].to_owned()));
        }
        let node_id = fields[2];
        if node_id.is_empty() || node_id.contains(['#', ',']) {
            return Err(bad("invalid node ID"));
        }
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let kv = fields[5..]
            .iter()
            .filter(|f| !f.is_empty())
            .map(|f| match f.split_once('=') {
                Some((k, v)) => (k.to_owned(), unescape(v)),
                None => ((*f).to_owned(), String::new()),
            })
            .collect();
        Ok(Greeting {
            protocol: protocol.to_owned(),
            version: fields[1].to_owned(),
            node_id: node_id.to_owned(),
            auths: list(fields[3]),
            framings: list(fields[4]),
            kv,
        })
    }

    /// Formats line 1 without line ending, escaping values.
    pub fn encode(&self) -> String {
        let mut s = format!(
            "{};{};{};{};{}",
            self.protocol,
            self.version,
            self.node_id,
            self.auths.join(","),
            self.framings.join(",")
        );
        for (k, v) in &self.kv {
            s.push(';');
            s.push_str(k);
            s.push('=');
            s.push_str(&escape(v));
        }
        s
    }

    /// The value of the first field named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.kv
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the sender has a certificate: a `tls` key whose integer part is 1
    /// (Perl sends `tls=1.0`).
    pub fn offers_tls(&self) -> bool {
        self.get("tls")
            .and_then(|v| v.split('.').next())
            .is_some_and(|major| major.trim() == "1")
    }
}

/// Escapes a value: `%` → `%25`, `;` → `%3b`.
pub fn escape(value: &str) -> String {
    value.replace('%', "%25").replace(';', "%3b")
}

/// Reverses [`escape`] (`%3b`/`%3B`/`%25`); other `%` sequences stay literal,
/// since a conforming sender never produces them.
pub fn unescape(value: &str) -> String {
    if !value.contains('%') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let code = tail.get(..3).map(str::to_ascii_lowercase);
        match code.as_deref() {
            Some("%3b") => out.push(';'),
            Some("%25") => out.push('%'),
            _ => {
                out.push('%');
                rest = &tail[1..];
                continue;
            }
        }
        rest = &tail[3..];
    }
    out.push_str(rest);
    out
}

/// A fresh nonce line: 66 random bytes in standard base64 (88 characters),
/// as Perl sends it.
///
/// # Panics
/// If the operating system's random number generator fails.
pub fn generate_nonce() -> String {
    let mut bytes = [0u8; 66];
    fill_random(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn fill_random(buf: &mut [u8]) {
    // The OS RNG failing is not recoverable for a node that must make
    // unguessable nonces; refusing to run is the only safe choice.
    if let Err(e) = getrandom::fill(buf) {
        panic!("operating system RNG failed: {e}");
    }
}

/// A line for error messages: lossy UTF-8, at most 200 characters.
pub(crate) fn shorten(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.into_owned(),
    }
}
