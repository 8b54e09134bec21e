//! Serialisers: how arguments, results and events become octets.
//!
//! As in the original, one serialiser encodes everything that crosses the
//! channel of one worker: call arguments, results and events all have the
//! serialiser's [`Serialiser::Value`] type. The parent and the worker
//! function must use the same serialiser; the worker checks its name at
//! start and refuses to serve on a mismatch. For separate argument,
//! result, event and error types, declare a typed
//! [`Function`](super::Function) instead.
//!
//! | serialiser | `Value` | notes |
//! |---|---|---|
//! | [`Raw`] | `Vec<u8>` | one octet string, no framing: the fastest |
//! | [`Strings`] | `Vec<Vec<u8>>` | a list of octet strings, BER-length packed like the original's `STRING` serialiser |
//! | [`Json`] | `serde_json::Value` or any serde type | JSON text |
//! | [`Cbor`] | `ciborium::Value` or any serde type | CBOR (RFC 8949) |

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Error;

/// Turns values into octets and back.
///
/// Implement it to bring your own format; the provided ones cover raw
/// octets, lists of octet strings, JSON and CBOR.
pub trait Serialiser: Clone + Send + Sync + 'static {
    /// The type of arguments, results and events.
    type Value: Send + 'static;

    /// A short name, checked against the worker's at start (`"raw"`, `"json"`, ...).
    fn name(&self) -> &'static str;

    /// Appends the encoding of `value` to `out`.
    fn encode(&self, value: &Self::Value, out: &mut Vec<u8>) -> Result<(), Error>;

    /// Decodes a whole message.
    fn decode(&self, bytes: &[u8]) -> Result<Self::Value, Error>;
}

/// One octet string per message, sent as is. `Value = Vec<u8>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Raw;

impl Serialiser for Raw {
    type Value = Vec<u8>;

    fn name(&self) -> &'static str {
        "raw"
    }

    fn encode(&self, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(value);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(bytes.to_vec())
    }
}

/// A list of octet strings, each preceded by its BER-compressed length
/// (Perl's `pack "(w/a*)*"`, the original's `STRING` serialiser).
/// `Value = Vec<Vec<u8>>`.
///
/// ```
/// use aemp::rpc::{Serialiser, Strings};
/// let mut bytes = Vec::new();
/// Strings.encode(&vec![b"ab".to_vec(), vec![]], &mut bytes).unwrap();
/// assert_eq!(bytes, [2, b'a', b'b', 0]); // length, octets; length, octets
/// assert_eq!(Strings.decode(&bytes).unwrap(), [b"ab".to_vec(), vec![]]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Strings;

impl Strings {
    /// Encodes a list of strings (used for start parameters too).
    pub(crate) fn pack(list: &[Vec<u8>], out: &mut Vec<u8>) {
        for s in list {
            ber_put(s.len() as u64, out);
            out.extend_from_slice(s);
        }
    }

    /// Decodes a list of strings.
    pub(crate) fn unpack(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut list = Vec::new();
        while !bytes.is_empty() {
            let (len, used) = ber_get(bytes)?;
            bytes = &bytes[used..];
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= bytes.len())
                .ok_or_else(|| {
                    format!(
                        "string {} claims {len} octets, only {} left",
                        list.len(),
                        bytes.len()
                    )
                })?;
            list.push(bytes[..len].to_vec());
            bytes = &bytes[len..];
        }
        Ok(list)
    }
}

fn ber_put(mut n: u64, out: &mut Vec<u8>) {
    let mut tmp = [0u8; 10];
    let mut i = tmp.len() - 1;
    tmp[i] = (n & 0x7f) as u8;
    n >>= 7;
    while n > 0 {
        i -= 1;
        tmp[i] = 0x80 | (n & 0x7f) as u8;
        n >>= 7;
    }
    out.extend_from_slice(&tmp[i..]);
}

fn ber_get(bytes: &[u8]) -> Result<(u64, usize), String> {
    let mut n: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        n = n.checked_mul(128).ok_or("BER length overflows 64 bits")? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Ok((n, i + 1));
        }
    }
    Err("truncated or overlong BER length".into())
}

impl Serialiser for Strings {
    type Value = Vec<Vec<u8>>;

    fn name(&self) -> &'static str {
        "strings"
    }

    fn encode(&self, value: &Vec<Vec<u8>>, out: &mut Vec<u8>) -> Result<(), Error> {
        Strings::pack(value, out);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        Strings::unpack(bytes).map_err(|message| Error::Decode {
            serialiser: "strings",
            what: "message",
            len: bytes.len(),
            message,
        })
    }
}

/// JSON through serde. `Json` alone carries [`serde_json::Value`];
/// `Json<T>` carries any `T: Serialize + DeserializeOwned`.
pub struct Json<T = serde_json::Value>(PhantomData<fn() -> T>);

/// CBOR through serde (ciborium). `Cbor` alone carries
/// [`ciborium::Value`]; `Cbor<T>` carries any serde type.
pub struct Cbor<T = ciborium::Value>(PhantomData<fn() -> T>);

macro_rules! serde_serialiser {
    ($ty:ident) => {
        impl<T> $ty<T> {
            /// The serialiser (all instances are alike).
            pub fn new() -> Self {
                $ty(PhantomData)
            }
        }
        impl<T> Default for $ty<T> {
            fn default() -> Self {
                $ty(PhantomData)
            }
        }
        impl<T> Clone for $ty<T> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<T> Copy for $ty<T> {}
        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}<{}>", stringify!($ty), std::any::type_name::<T>())
            }
        }
    };
}
serde_serialiser!(Json);
serde_serialiser!(Cbor);

impl<T> Serialiser for Json<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    type Value = T;

    fn name(&self) -> &'static str {
        "json"
    }

    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
        serde_json::to_writer(out, value).map_err(|e| Error::Encode {
            serialiser: "json",
            what: "value",
            message: e.to_string(),
        })
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::Decode {
            serialiser: "json",
            what: "message",
            len: bytes.len(),
            message: e.to_string(),
        })
    }
}

impl<T> Serialiser for Cbor<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    type Value = T;

    fn name(&self) -> &'static str {
        "cbor"
    }

    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
        ciborium::into_writer(value, out).map_err(|e| Error::Encode {
            serialiser: "cbor",
            what: "value",
            message: e.to_string(),
        })
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, Error> {
        ciborium::from_reader(bytes).map_err(|e| Error::Decode {
            serialiser: "cbor",
            what: "message",
            len: bytes.len(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_binary_octets() {
        let v: Vec<Vec<u8>> = vec![vec![], vec![0, 255, 10], vec![0x80; 200], vec![1; 20_000]];
        let mut out = Vec::new();
        Strings.encode(&v, &mut out).unwrap();
        // 200 needs a two-octet BER length: 0x81 0x48.
        assert_eq!(&out[..5], &[0, 3, 0, 255, 10]);
        assert_eq!(&out[5..7], &[0x81, 0x48]);
        assert_eq!(Strings.decode(&out).unwrap(), v);
        assert!(Strings.decode(&[5, 1]).is_err());
        assert!(Strings.decode(&[0x80]).is_err());
    }

    #[test]
    fn json_and_cbor_round_trip_nested_values() {
        let v = serde_json::json!({"a": [1, 2, {"b": null}], "c": "ü"});
        let mut out = Vec::new();
        Json::new().encode(&v, &mut out).unwrap();
        assert_eq!(Json::<serde_json::Value>::new().decode(&out).unwrap(), v);
        let mut out = Vec::new();
        Cbor::<serde_json::Value>::new()
            .encode(&v, &mut out)
            .unwrap();
        assert_eq!(Cbor::<serde_json::Value>::new().decode(&out).unwrap(), v);
        let e = Json::<u32>::new().decode(b"\"x\"").unwrap_err();
        assert!(e.to_string().contains("json"), "{e}");
    }
}
