//! The AEMP wire protocol without sockets: pure functions and state
//! machines that a reactor drives with bytes (protocol notes §1–7).
//!
//! - `error.rs`: [`Error`], the one error type of this module.
//! - `auth.rs`: auth methods, tokens, the auth line.
//! - `greeting.rs`: greeting line 1 and the nonce line.
//! - `handshake.rs`: the handshake state machine (bytes in, bytes + events out).
//! - `framing/mod.rs`: [`Framing`], [`Packet`], encoders and the streaming [`Decoder`].
//! - `framing/json.rs`: the JSON packet scanner and parser.
//! - `framing/cbor.rs`: the CBOR packet scanner, parser and CBOR→JSON conversion.
//!
//! Nothing here depends on the rest of the crate.

pub mod auth;
pub mod error;
pub mod framing;
pub mod greeting;
pub mod handshake;

pub use error::{Error, Result};
pub use framing::{Decoder, Framing, Packet};
pub use handshake::{Config, Established, Event, Handshake};
