//! Gathered logs: the Rust form of AnyEvent::MP::LogCatcher. A *catcher*
//! node receives the log records of every other node of its network.
//!
//! # The two sides
//!
//! - **Catching** ([`catch`], [`catch_with`]): for every node in the
//!   database's `'l` family (where each listening node publishes its
//!   addresses; see `db_mon`), now and later, the catcher makes a local
//!   port and calls [`CONNECT_FN`] on that node with
//!   `[0, port, level]`, as the original does with `snd_to_func`. It never
//!   catches its own node. When the node goes away the port is killed; it
//!   connects again when the node comes back (a new `'l` entry) and, while
//!   the entry stays, retries every [`RETRY`]. `catch(node, None)` stops.
//! - **Being caught** ([`CONNECT_FN`], registered on every networked node
//!   by [`Node::with_config`]): attaches a *sink* that sends each log record
//!   at `level` or more severe to the catcher's port as
//!   `[time, context, level, text]` (time in float seconds since the epoch,
//!   context the record's target, level AnyEvent::Log's number, see
//!   [`level_number`]), and detaches when that port dies (its node went
//!   away, or it stopped catching).
//!
//! # The logger: [`install`] or [`forward`]
//!
//! The `log` crate has one global logger, and the application owns it, so
//! this module never sets it by itself. A process whose records should be
//! catchable either
//! - installs its logger *through* aemp: [`install`]`(Some(inner), level)`
//!   sets a [`Forwarder`] wrapping `inner` (env_logger, or any
//!   [`log::Log`]) as the global logger; `inner` sees exactly what it would
//!   have seen with `level` as the maximum level, and the forwarder raises
//!   `log`'s maximum level while a catcher wants more; or
//! - keeps its own logger and calls [`forward`]`(record)` from its
//!   `log` method (then it also decides `log::max_level`).
//!
//! Records are those of the whole process (every node in it). A catcher
//! that catches several nodes of one process gets each record once,
//! through one of them (see [`SinkStats::active`]).
//!
//! # Never blocking, never looping, never losing silently
//!
//! The logging thread only formats the record and `try_send`s it into each
//! sink's bounded queue ([`QUEUE`] records); a thread per sink drains the
//! queue and sends ([`Node::snd_wait`], so a catcher that stopped reading
//! holds at most the connection's `unsent_high_water` bytes). When a queue
//! is full the record is dropped and counted: per sink in [`sinks`], in
//! total in [`dropped`], and the catcher receives a warning record
//! `"N log records dropped: …"` as soon as the sink sends again.
//!
//! Not forwarded: records logged by the sink threads themselves (the send
//! path's own logs; a thread-local guard), records a catcher logs for
//! the records it received (so two nodes catching each other do not echo),
//! aemp's own records (`aemp` and `aemp::…` targets) at debug and trace,
//! and the packet trace `aemp::trace` at any level.
//!
//! ```
//! use aemp::logcatch;
//! // Install env_logger (or any logger) through the forwarder.
//! let inner = env_logger::Builder::new().filter_level(log::LevelFilter::Warn).build();
//! let _ = logcatch::install(Some(Box::new(inner)), log::LevelFilter::Warn);
//! assert_eq!(logcatch::level_number(log::Level::Warn), 5);
//! assert_eq!(logcatch::log_level(6), log::Level::Info); // "note"
//! ```

mod catcher;
mod sink;

pub use catcher::{catch, catch_with, Caught, RETRY};
pub use sink::{dropped, forward, install, sinks, Forwarder, SinkStats, QUEUE};

use crate::node::Node;
use std::time::{SystemTime, UNIX_EPOCH};

/// The function a catcher calls on each node: `[version, port, level]`
/// (version 0) attaches a sink sending to `port`.
pub const CONNECT_FN: &str = "AnyEvent::MP::LogCatcher::connect";

/// The function that starts catching on the node it is called on:
/// `[level]` catches at `level` (0–9, or a name such as `"info"`),
/// `[null]` (or nothing) stops; a service for `aemp run`:
/// `services '[["AnyEvent::MP::LogCatcher::catch", 9]]'`.
pub const CATCH_FN: &str = "AnyEvent::MP::LogCatcher::catch";

/// AnyEvent::Log's number for a `log` level: error 4, warn 5, info 7,
/// debug 8, trace 9 (`log` has no fatal 1, alert 2, critical 3 or note 6).
///
/// ```
/// use aemp::logcatch::{level_name, level_number, log_level};
/// assert_eq!(level_number(log::Level::Warn), 5);
/// assert_eq!(level_name(5), "warn");
/// assert_eq!(log_level(2), log::Level::Error); // "alert": no such level in `log`
/// ```
pub fn level_number(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 4,
        log::Level::Warn => 5,
        log::Level::Info => 7,
        log::Level::Debug => 8,
        log::Level::Trace => 9,
    }
}

/// The `log` level for an AnyEvent::Log number: 1–4 (fatal, alert,
/// critical, error) error, 5 warn, 6–7 (note, info) info, 8 debug, 9 trace.
pub fn log_level(number: u8) -> log::Level {
    match number {
        0..=4 => log::Level::Error,
        5 => log::Level::Warn,
        6 | 7 => log::Level::Info,
        8 => log::Level::Debug,
        _ => log::Level::Trace,
    }
}

/// AnyEvent::Log's name for a level number (`"warn"` for 5).
pub fn level_name(number: u8) -> &'static str {
    match number {
        0 => "off",
        1 => "fatal",
        2 => "alert",
        3 => "critical",
        4 => "error",
        5 => "warn",
        6 => "note",
        7 => "info",
        8 => "debug",
        _ => "trace",
    }
}

/// A level as a catcher gives it: a number 0–9 (a float is truncated), a
/// numeric string, or a name (`"fatal"` … `"trace"`, also `"warning"`,
/// `"crit"`, `"err"`, `"notice"`, `"all"`).
///
/// ```
/// use aemp::logcatch::parse_level;
/// use serde_json::json;
/// assert_eq!(parse_level(&json!(7)), Some(7));
/// assert_eq!(parse_level(&json!("warning")), Some(5));
/// assert_eq!(parse_level(&json!("9")), Some(9));
/// assert_eq!(parse_level(&json!("loud")), None);
/// ```
pub fn parse_level(v: &serde_json::Value) -> Option<u8> {
    if let Some(n) = v.as_f64() {
        return (n >= 0.0).then(|| n.min(9.0) as u8);
    }
    let s = v.as_str()?.trim().to_ascii_lowercase();
    if let Ok(n) = s.parse::<u8>() {
        return Some(n.min(9));
    }
    Some(match s.as_str() {
        "off" => 0,
        "fatal" | "emerg" => 1,
        "alert" => 2,
        "critical" | "crit" => 3,
        "error" | "err" => 4,
        "warn" | "warning" => 5,
        "note" | "notice" => 6,
        "info" => 7,
        "debug" => 8,
        "trace" | "all" => 9,
        _ => return None,
    })
}

/// Now, in float seconds since the epoch.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Registers [`CONNECT_FN`] and [`CATCH_FN`] on `node` (done by
/// [`Node::with_config`] for every networked node).
pub(crate) fn register(node: &Node) {
    node.register(CONNECT_FN, |args| sink::connect(&crate::node(), &args));
    node.register(CATCH_FN, |args| {
        let node = crate::node();
        let level = match args.first() {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => match parse_level(v) {
                Some(l) => Some(l),
                None => {
                    log::warn!("{CATCH_FN}: {v} is not a log level (0-9 or a name)");
                    return;
                }
            },
        };
        if let Err(e) = catch(&node, level) {
            log::warn!("{CATCH_FN}: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn levels_map_both_ways() {
        for l in [
            log::Level::Error,
            log::Level::Warn,
            log::Level::Info,
            log::Level::Debug,
            log::Level::Trace,
        ] {
            assert_eq!(log_level(level_number(l)), l);
        }
        assert_eq!(log_level(1), log::Level::Error); // fatal
        assert_eq!(log_level(6), log::Level::Info); // note
        assert_eq!(level_name(6), "note");
    }

    #[test]
    fn levels_parse_from_numbers_and_names() {
        assert_eq!(parse_level(&json!(9)), Some(9));
        assert_eq!(parse_level(&json!(7.5)), Some(7));
        assert_eq!(parse_level(&json!(12)), Some(9));
        assert_eq!(parse_level(&json!("5")), Some(5));
        assert_eq!(parse_level(&json!("Warning")), Some(5));
        assert_eq!(parse_level(&json!("crit")), Some(3));
        assert_eq!(parse_level(&json!(-1)), None);
        assert_eq!(parse_level(&json!("loud")), None);
        assert_eq!(parse_level(&json!(null)), None);
    }

    #[test]
    fn a_caught_record_shows_its_delay_only_past_a_millisecond() {
        let c = Caught {
            node: "n".into(),
            time: 10.0,
            received: 10.0005,
            context: "c".into(),
            level: 5,
            text: "t".into(),
        };
        assert_eq!(c.line(), "[n] t");
        let late = Caught {
            received: 11.5,
            ..c.clone()
        };
        assert_eq!(late.line(), "[n+1.500s] t");
        let early = Caught { received: 9.0, ..c };
        assert_eq!(early.origin(), "[n-1.000s]");
    }
}
