//! The scalar keys (time-outs, buffer limits, method lists, switches):
//! `setKEY VALUE` (alias `KEY`) and `delKEY`, and checking their values.

use super::lists::list_arg;
use super::{del, leak, set};
use crate::cmd::{Failure, Spec};
use serde_json::Value;

/// The scalar keys: the key, its kind of value, and what it sets.
const SCALARS: [(&str, Kind, &str); 13] = [
    (
        "monitor_timeout",
        Kind::Seconds,
        "seconds the connection attempts to a node go on; also bounds a handshake (default 30)",
    ),
    (
        "connect_interval",
        Kind::Seconds,
        "seconds between connection attempts to a node's addresses; its monitors fire after this long without a connection (default 2)",
    ),
    (
        "busy_wait",
        Kind::SecondsOrZero,
        "seconds a node's threads poll for work before sleeping (default 0.0001; 0: never poll)",
    ),
    (
        "tick",
        Kind::SecondsOrZero,
        "heartbeat tick: a peer silent for a tick is probed, one silent for 3 ticks is dead (default 4; 0: no heartbeat)",
    ),
    (
        "unsent_limit",
        Kind::Bytes,
        "unsent bytes per connection past which it fails like a lost one (default 134217728)",
    ),
    (
        "unsent_high_water",
        Kind::Bytes,
        "unsent bytes per connection above which snd_wait waits (default 1048576)",
    ),
    (
        "thread_stack_size",
        Kind::Bytes,
        "stack size in bytes of thread ports' threads (default: the standard library's, 2 MiB)",
    ),
    (
        "framing_format",
        Kind::Names,
        "framings offered and accepted, by preference (default cbor,json)",
    ),
    (
        "auth_offer",
        Kind::Names,
        "authentication methods sent (default tls_sha3_512,hmac_sha3_512)",
    ),
    (
        "auth_accept",
        Kind::Names,
        "authentication methods accepted (default: the offer plus tls_anon,cleartext)",
    ),
    (
        "nodelay",
        Kind::Bool,
        "TCP_NODELAY on connections (default on)",
    ),
    (
        "autocork",
        Kind::Bool,
        "for Perl nodes sharing the file: aemp nodes always cork",
    ),
    (
        "secure",
        Kind::Bool,
        "for Perl nodes sharing the file: aemp nodes never run code sent to them",
    ),
];

/// setKEY and delKEY for every scalar key, in help order.
pub(super) fn commands() -> Vec<Spec> {
    SCALARS
        .into_iter()
        .flat_map(|(key, kind, what)| scalar_commands(key, kind, what))
        .collect()
}

#[derive(Clone, Copy)]
enum Kind {
    Seconds,
    /// Seconds, where 0 means "off".
    SecondsOrZero,
    Bytes,
    Names,
    Bool,
}

/// setKEY (alias KEY) and delKEY for a scalar key.
fn scalar_commands(key: &'static str, kind: Kind, what: &str) -> Vec<Spec> {
    let (value, help) = match kind {
        Kind::Seconds => ("SECONDS", "a positive number of seconds"),
        Kind::SecondsOrZero => ("SECONDS", "a number of seconds (0: off)"),
        Kind::Bytes => ("BYTES", "a positive whole number of bytes"),
        Kind::Names => (
            "LIST",
            "names, comma-separated or a JSON array, by preference",
        ),
        Kind::Bool => ("BOOL", "1/0, true/false, yes/no or on/off"),
    };
    let about = format!("Set {key}: {what}");
    vec![
        set(
            leak(format!("set{key}")),
            key,
            value,
            help,
            &about,
            move |cmd, v| match kind {
                Kind::Seconds => seconds(cmd, v, false),
                Kind::SecondsOrZero => seconds(cmd, v, true),
                Kind::Bytes => bytes(cmd, v),
                Kind::Names => Ok(Value::Array(list_arg(cmd, v, false)?)),
                Kind::Bool => boolean(cmd, v),
            },
        ),
        del(
            leak(format!("del{key}")),
            key,
            leak(format!("Remove {key} (inherit it again)")),
        ),
    ]
}

fn seconds(cmd: &str, v: &Value, zero: bool) -> Result<Value, Failure> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() && (n > 0.0 || (zero && n == 0.0)) => {
            Ok(if n.fract() == 0.0 && n < 1e15 {
                Value::from(n as i64)
            } else {
                Value::from(n)
            })
        }
        _ => Err(Failure::Usage(format!(
            "{cmd}: expected a {} number of seconds, not {v}",
            if zero { "non-negative" } else { "positive" }
        ))),
    }
}

fn bytes(cmd: &str, v: &Value) -> Result<Value, Failure> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n > 0 => Ok(Value::from(n)),
        _ => Err(Failure::Usage(format!(
            "{cmd}: expected a positive whole number of bytes, not {v}"
        ))),
    }
}

fn boolean(cmd: &str, v: &Value) -> Result<Value, Failure> {
    let b = match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_f64() == Some(0.0) => Some(false),
        Value::Number(n) if n.as_f64() == Some(1.0) => Some(true),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    };
    b.map(Value::Bool).ok_or_else(|| {
        Failure::Usage(format!(
            "{cmd}: expected 1/0, true/false, yes/no or on/off, not {v}"
        ))
    })
}
