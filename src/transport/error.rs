//! The one error type of the transport layer.

use thiserror::Error;

/// Everything that can go wrong while handshaking or decoding packets.
///
/// Each variant but [`Error::BadPacket`] means "close this connection"
/// (see [`Error::is_fatal`]); the Display text names the
/// problem (and the peer, where known) so that the driver can log it as is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// A handshake line exceeded 4 KiB (the length counts the bytes seen so far).
    #[error("line too long ({0} bytes)")]
    LineTooLong(usize),
    /// A greeting line could not be parsed.
    #[error("malformed greeting: {problem}: {input:?}")]
    BadGreeting {
        /// What is wrong.
        problem: String,
        /// The offending line (lossily decoded, possibly shortened).
        input: String,
    },
    /// The peer speaks a protocol we do not (e.g. an `aemp-<word>` extension).
    #[error("unsupported protocol {peer:?} (we speak {ours:?})")]
    UnsupportedProtocol {
        /// Field 1 of the peer's greeting.
        peer: String,
        /// What we expected.
        ours: String,
    },
    /// The peer's protocol version is not 1.
    #[error("version mismatch: {0}")]
    VersionMismatch(String),
    /// The peer claims our own node ID.
    #[error("refusing to talk to myself")]
    SelfConnection,
    /// The peer sent back our own greeting lines.
    #[error("echo attack: peer repeated our greeting")]
    EchoAttack,
    /// Both nonces are equal, so nobody can be the TLS client.
    #[error("identical nonces from {peer}: cannot choose TLS roles")]
    SameNonce {
        /// The peer's node ID.
        peer: String,
    },
    /// No TLS and no secret: nothing to authenticate with.
    #[error("unable to handshake TLS and no shared secret configured")]
    NoAuthPossible,
    /// No auth method the peer accepts is one we may send.
    #[error("no common auth method with {peer}: peer accepts [{accepts}], we offer [{offer}]")]
    NoCommonAuth {
        /// The peer's node ID.
        peer: String,
        /// The peer's accepted methods, comma-separated.
        accepts: String,
        /// Our offer, comma-separated.
        offer: String,
    },
    /// The peer's auth line is malformed, names a method we do not accept,
    /// or its token does not verify.
    #[error("authentication failure from {peer}: {reason}")]
    AuthFailure {
        /// The peer's node ID.
        peer: String,
        /// Why (never contains secret material).
        reason: String,
    },
    /// No framing in common.
    #[error("no common framing: peer offers [{peer}], we support [{ours}]")]
    NoCommonFraming {
        /// The peer's framings, comma-separated.
        peer: String,
        /// Ours, comma-separated.
        ours: String,
    },
    /// The peer's auth line names a framing we did not offer.
    #[error("{peer} wants to send framing {framing:?}, which we do not support")]
    UnsupportedFraming {
        /// The peer's node ID.
        peer: String,
        /// The framing named in its auth line.
        framing: String,
    },
    /// The handshake deadline passed.
    #[error("handshake timed out")]
    Timeout,
    /// The connection closed before the handshake completed.
    #[error("connection closed during handshake")]
    Eof,
    /// The driver used the state machine out of order.
    #[error("handshake misuse: {0}")]
    Misuse(&'static str),
    /// A packet stream could not be decoded.
    #[error("{framing} framing error at byte {offset}: {problem}")]
    Framing {
        /// `json` or `cbor`.
        framing: &'static str,
        /// Stream offset (bytes since the decoder started) of the packet.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// One packet was well framed but a value in it cannot be turned into
    /// JSON (a CBOR integer beyond 64 bits, invalid UTF-8 in a text
    /// string, an unsupported map key). The packet is skipped; the stream
    /// goes on, so this error does not close the connection.
    #[error("{framing} packet at byte {offset} dropped: {problem}")]
    BadPacket {
        /// `json` or `cbor`.
        framing: &'static str,
        /// Stream offset of the packet.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// A packet exceeded the configured maximum size.
    #[error("{framing} packet at byte {offset} exceeds {max} bytes")]
    PacketTooLarge {
        /// `json` or `cbor`.
        framing: &'static str,
        /// Stream offset of the packet.
        offset: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A packet could not be encoded (should not happen for JSON values).
    #[error("{framing} encoding failed: {problem}")]
    Encode {
        /// `json` or `cbor`.
        framing: &'static str,
        /// What went wrong.
        problem: String,
    },
}

impl Error {
    /// Whether the connection must close: every error but
    /// [`Error::BadPacket`].
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Error::BadPacket { .. })
    }
}

/// Shorthand for results of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
