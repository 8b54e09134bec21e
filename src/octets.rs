//! [`Octets`]: binary data as Perl sends it.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::ops::Deref;

/// An octet string: binary data the way AnyEvent::MP carries it.
///
/// Perl has no separate byte type: an octet string is a string whose
/// characters are all below 256, and its JSON encoder sends it as a JSON
/// string with one character (U+0000–U+00FF) per octet. `Octets` does the
/// same, both ways: it serialises as such a string and deserialises from
/// one (a character above U+00FF is an error naming it). aemp decodes a
/// CBOR byte string to the same string, so what Perl sends as bytes arrives
/// as `Octets` whatever the framing. A plain `Vec<u8>` would travel as an
/// array of numbers instead, which Perl sees as an array.
///
/// Over the CBOR framing, `Octets` travel as a CBOR *text* string of those
/// characters (a message is JSON values, which have no byte type); Perl's
/// CBOR::XS decodes that to the same Perl string as the byte string.
///
/// ```
/// use aemp::{msg, Octets};
/// let data = Octets::from(vec![0x63, 0x61, 0x66, 0xe9, 0x00]);
/// let m = msg!["blob", &data];
/// assert_eq!(m[1], "caf\u{e9}\u{0}");
/// let (_, back): (String, Octets) = m.decode().unwrap();
/// assert_eq!(Vec::from(back), vec![0x63, 0x61, 0x66, 0xe9, 0x00]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Octets(pub Vec<u8>);

impl Octets {
    /// The octets as a string of one character (U+0000–U+00FF) per octet,
    /// as they travel.
    ///
    /// ```
    /// assert_eq!(aemp::Octets::from(&b"\xffA"[..]).to_octet_string(), "\u{ff}A");
    /// ```
    pub fn to_octet_string(&self) -> String {
        self.0.iter().copied().map(char::from).collect()
    }

    /// Reads a string of one character per octet; the first character
    /// above U+00FF is an error naming it and its position.
    ///
    /// ```
    /// use aemp::Octets;
    /// assert_eq!(Octets::from_octet_string("caf\u{e9}").unwrap().0, b"caf\xe9");
    /// let err = Octets::from_octet_string("a\u{263a}").unwrap_err();
    /// assert!(err.contains("U+263A"), "{err}");
    /// ```
    pub fn from_octet_string(s: &str) -> Result<Octets, String> {
        s.chars()
            .enumerate()
            .map(|(i, c)| {
                u8::try_from(c).map_err(|_| {
                    format!(
                        "character {i} of an octet string is U+{:04X}, above U+00FF",
                        u32::from(c)
                    )
                })
            })
            .collect::<Result<Vec<u8>, String>>()
            .map(Octets)
    }

    /// Takes the bytes out.
    ///
    /// ```
    /// assert_eq!(aemp::Octets::from(vec![1, 2]).into_vec(), vec![1, 2]);
    /// ```
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl Serialize for Octets {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_octet_string())
    }
}

impl<'de> Deserialize<'de> for Octets {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Octets, D::Error> {
        deserializer.deserialize_str(OctetsVisitor)
    }
}

struct OctetsVisitor;

impl Visitor<'_> for OctetsVisitor {
    type Value = Octets;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an octet string (characters U+0000 to U+00FF)")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Octets, E> {
        Octets::from_octet_string(s).map_err(E::custom)
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Octets, E> {
        Ok(Octets(b.to_vec()))
    }
}

impl From<Vec<u8>> for Octets {
    fn from(v: Vec<u8>) -> Octets {
        Octets(v)
    }
}

impl From<&[u8]> for Octets {
    fn from(b: &[u8]) -> Octets {
        Octets(b.to_vec())
    }
}

impl From<Octets> for Vec<u8> {
    fn from(o: Octets) -> Vec<u8> {
        o.0
    }
}

impl Deref for Octets {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl AsRef<[u8]> for Octets {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
