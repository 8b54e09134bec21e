//! Packet framings (protocol notes §7): a packet is a JSON array whose element
//! 0 is the destination port name. `json.rs` and `cbor.rs` each provide a
//! completeness scanner and a parser; this file holds the shared streaming
//! buffer, the [`Decoder`] and the encoders.

mod cbor;
mod json;

use std::fmt;

use serde_json::Value;

use crate::message::Elem;

use super::error::{Error, Result};

/// One packet: `[portname, message...]`.
pub type Packet = Vec<Value>;

/// Default maximum size of one encoded packet (64 MiB).
pub const DEFAULT_MAX_PACKET: usize = 64 << 20;

/// A packet framing we support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Compact JSON arrays back to back.
    Json,
    /// Definite-length CBOR arrays back to back.
    Cbor,
}

impl Framing {
    /// All framings we support, in our default preference order.
    pub const ALL: [Framing; 2] = [Framing::Cbor, Framing::Json];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Framing::Json => "json",
            Framing::Cbor => "cbor",
        }
    }

    /// Looks up a wire name; `None` for names we do not support (e.g. `storable`).
    pub fn from_name(name: &str) -> Option<Framing> {
        Framing::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Appends `packet` encoded in `framing` to `out`.
///
/// Fails only if the encoder rejects a value (not expected for JSON values);
/// `out` is then left as it was.
pub fn encode(framing: Framing, packet: &[Value], out: &mut Vec<u8>) -> Result<()> {
    let before = out.len();
    let res = match framing {
        Framing::Json => serde_json::to_writer(&mut *out, packet).map_err(|e| e.to_string()),
        Framing::Cbor => ciborium::into_writer(packet, &mut *out).map_err(|e| e.to_string()),
    };
    res.map_err(|problem| encode_failed(framing, out, before, problem))
}

/// Appends the packet `[port, msg...]` encoded in `framing` to `out`: the
/// same bytes as [`encode`] of that packet, without assembling it (the
/// send path has the port name and the message apart).
///
/// ```
/// use aemp::transport::framing::{encode, encode_packet, Framing};
/// use serde_json::json;
/// let msg = [json!("tag"), json!([1, 2])];
/// for f in Framing::ALL {
///     let (mut a, mut b) = (Vec::new(), Vec::new());
///     encode_packet(f, "port1", &msg, &mut a).unwrap();
///     encode(f, &[json!("port1"), json!("tag"), json!([1, 2])], &mut b).unwrap();
///     assert_eq!(a, b);
/// }
/// ```
pub fn encode_packet(framing: Framing, port: &str, msg: &[Value], out: &mut Vec<u8>) -> Result<()> {
    encode_elems(framing, port, msg.len(), out, |f| {
        msg.iter().for_each(|v| f(Elem::Value(v)))
    });
    Ok(())
}

/// [`encode_packet`] of a [`Message`](crate::Message), reading a compact
/// message's elements where they are (a remote send then builds no
/// vector of values on the sending thread): the same bytes.
pub(crate) fn encode_message(
    framing: Framing,
    port: &str,
    msg: &crate::Message,
    out: &mut Vec<u8>,
) -> Result<()> {
    encode_elems(framing, port, msg.len(), out, |f| msg.for_each_elem(f));
    Ok(())
}

/// Appends the packet `[port, elements...]`: `len` elements, which
/// `each` hands, one at a time, to the function it is given.
fn encode_elems(
    framing: Framing,
    port: &str,
    len: usize,
    out: &mut Vec<u8>,
    each: impl FnOnce(&mut dyn FnMut(Elem<'_>)),
) {
    match framing {
        Framing::Json => {
            out.push(b'[');
            json::write_str(out, port);
            each(&mut |e| {
                out.push(b',');
                json::write_elem(out, e);
            });
            out.push(b']');
        }
        Framing::Cbor => {
            // A definite-length array head, as ciborium writes it.
            cbor_head(out, 4, len as u64 + 1);
            cbor::write_text(out, port);
            each(&mut |e| cbor::write_elem(out, e));
        }
    }
}

fn encode_failed(framing: Framing, out: &mut Vec<u8>, before: usize, problem: String) -> Error {
    out.truncate(before);
    Error::Encode {
        framing: framing.name(),
        problem,
    }
}

/// A CBOR head (RFC 8949 §3): major type and argument, shortest form.
fn cbor_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= u8::MAX as u64 {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= u16::MAX as u64 {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u32::MAX as u64 {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// What a scanner found at the start of the unconsumed input.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// A complete packet occupies `start..end` (bytes before `start` are
    /// separators to drop).
    Complete { start: usize, end: usize },
    /// More bytes are needed; `skip` leading bytes are separators that can
    /// already be dropped.
    Incomplete { skip: usize },
}

enum Scanner {
    Json(json::Scanner),
    Cbor(cbor::Scanner),
}

/// A streaming packet decoder: [`feed`](Decoder::feed) bytes as they
/// arrive, then take packets with [`next_packet`](Decoder::next_packet)
/// until it returns `Ok(None)`.
///
/// Partial packets stay buffered. A scan remembers how far it got, so a
/// large packet arriving in many pieces is scanned once and parsed once.
/// After an error the decoder keeps returning that error.
pub struct Decoder {
    framing: Framing,
    scanner: Scanner,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    max_packet: usize,
    failed: Option<Error>,
}

impl Decoder {
    /// A decoder with the default maximum packet size.
    pub fn new(framing: Framing) -> Decoder {
        Decoder::with_max_packet(framing, DEFAULT_MAX_PACKET)
    }

    /// A decoder that fails on packets longer than `max_packet` bytes.
    pub fn with_max_packet(framing: Framing, max_packet: usize) -> Decoder {
        let scanner = match framing {
            Framing::Json => Scanner::Json(json::Scanner::default()),
            Framing::Cbor => Scanner::Cbor(cbor::Scanner::default()),
        };
        Decoder {
            framing,
            scanner,
            buf: Vec::new(),
            pos: 0,
            base: 0,
            max_packet,
            failed: None,
        }
    }

    /// The framing this decoder reads.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Bytes buffered but not yet returned as packets.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        // Drop consumed bytes before growing, keeping the copy amortised.
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete packet, `Ok(None)` if more bytes are needed.
    ///
    /// An [`Error::BadPacket`] skips one well-framed packet whose content
    /// cannot be converted; call again for the ones after it. Any other
    /// error is a broken stream, returned again on every later call.
    pub fn next_packet(&mut self) -> Result<Option<Packet>> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let res = self.decode_one();
        if let Err(e) = &res {
            if e.is_fatal() {
                self.failed = Some(e.clone());
            }
        }
        res
    }

    /// The next complete packet from the bytes fed before and then from
    /// `data`, which is advanced past the bytes used: the same as
    /// [`feed`](Decoder::feed)ing `data` and calling
    /// [`next_packet`](Decoder::next_packet) until it returns `Ok(None)`,
    /// but a packet that lies whole in `data` is read where it is, without
    /// being copied into the decoder's buffer first (only the start of a
    /// packet that continues beyond `data` is kept). Call it until it
    /// returns `Ok(None)`, which leaves `data` empty.
    ///
    /// ```
    /// use aemp::transport::framing::{encode, Decoder, Framing};
    /// use serde_json::json;
    /// let mut bytes = Vec::new();
    /// for i in 0..3 {
    ///     encode(Framing::Json, &[json!("port"), json!(i)], &mut bytes).unwrap();
    /// }
    /// let mut d = Decoder::new(Framing::Json);
    /// let (first, second) = bytes.split_at(20); // the cut falls inside the second packet
    /// let mut got = Vec::new();
    /// for chunk in [first, second] {
    ///     let mut rest = chunk;
    ///     while let Some(p) = d.next_packet_from(&mut rest).unwrap() {
    ///         got.push(p[1].clone());
    ///     }
    ///     assert!(rest.is_empty());
    /// }
    /// assert_eq!(got, [json!(0), json!(1), json!(2)]);
    /// ```
    pub fn next_packet_from(&mut self, data: &mut &[u8]) -> Result<Option<Packet>> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let res = self.decode_from(data);
        if let Err(e) = &res {
            if e.is_fatal() {
                self.failed = Some(e.clone());
            }
        }
        res
    }

    fn decode_from(&mut self, data: &mut &[u8]) -> Result<Option<Packet>> {
        /// Bytes moved into the buffer at a time to complete a packet
        /// begun there.
        const PIECE: usize = 4 << 10;
        if self.pos < self.buf.len() {
            if let Some(p) = self.decode_one()? {
                return Ok(Some(p));
            }
        }
        while self.pos < self.buf.len() {
            // A packet begun in the buffer: complete it a piece at a time.
            let whole = *data;
            if whole.is_empty() {
                return Ok(None);
            }
            let k = whole.len().min(PIECE);
            self.feed(&whole[..k]);
            let res = self.decode_one();
            match &res {
                Ok(None) => {
                    *data = &whole[k..];
                    continue;
                }
                Err(e) if e.is_fatal() => {
                    *data = &whole[k..];
                    return res;
                }
                // The packet (or a bad one, skipped) ended in this piece:
                // what follows it there goes back to `data`, to be read in
                // place.
                _ => {
                    let after = self.buf.len() - self.pos;
                    self.buf.truncate(self.pos);
                    *data = &whole[k - after..];
                    return res;
                }
            }
        }
        // The buffer is used up: read in place.
        self.base += self.buf.len() as u64;
        self.buf.clear();
        self.pos = 0;
        if data.is_empty() {
            return Ok(None);
        }
        let (res, used) = decode_in(
            &mut self.scanner,
            self.framing,
            self.max_packet,
            data,
            self.base,
        );
        self.base += used as u64;
        *data = &data[used..];
        if let Ok(None) = res {
            // The start of a packet, or nothing yet: kept, with the scan's
            // state, which counts from here.
            self.buf.extend_from_slice(data);
            *data = &[];
        }
        res
    }

    fn decode_one(&mut self) -> Result<Option<Packet>> {
        let data = &self.buf[self.pos..];
        let offset = self.base + self.pos as u64;
        let (res, used) = decode_in(
            &mut self.scanner,
            self.framing,
            self.max_packet,
            data,
            offset,
        );
        self.pos += used;
        res
    }
}

/// Decodes the packet at the start of `data` (at stream `offset`) with
/// `scanner`, whose state counts from there: the result, and the bytes it
/// used (the packet's, a bad one's too, or separators skipped).
fn decode_in(
    scanner: &mut Scanner,
    framing: Framing,
    max_packet: usize,
    data: &[u8],
    offset: u64,
) -> (Result<Option<Packet>>, usize) {
    let scanned = match scanner {
        Scanner::Json(s) => s.scan(data, max_packet),
        Scanner::Cbor(s) => s.scan(data, max_packet),
    };
    let name = framing.name();
    match scanned {
        Err(ScanError::TooLarge) => (
            Err(Error::PacketTooLarge {
                framing: name,
                offset,
                max: max_packet,
            }),
            0,
        ),
        Err(ScanError::Bad(problem)) => (
            Err(Error::Framing {
                framing: name,
                offset,
                problem,
            }),
            0,
        ),
        Ok(Scan::Incomplete { skip }) => (Ok(None), skip),
        Ok(Scan::Complete { start, end }) => {
            let bytes = &data[start..end];
            let offset = offset + start as u64;
            let packet = match framing {
                // The JSON scanner checks brackets only: text that
                // does not parse is a broken stream.
                Framing::Json => json::parse(bytes).map_err(|problem| Error::Framing {
                    framing: name,
                    offset,
                    problem,
                }),
                // The CBOR scanner checked every item header: what
                // fails now is a value, and only its packet is lost.
                Framing::Cbor => cbor::parse(bytes).map_err(|problem| Error::BadPacket {
                    framing: name,
                    offset,
                    problem,
                }),
            };
            (packet.map(Some), end)
        }
    }
}

/// Why a scan failed.
#[derive(Debug, PartialEq, Eq)]
enum ScanError {
    /// The packet exceeds the maximum size.
    TooLarge,
    /// Malformed input, described.
    Bad(String),
}
