//! Messages and kill reasons: lists of JSON values.
//!
//! A [`Message`] is what `snd` carries; by convention element 0 is a string
//! *tag*. A [`Reason`] is why a port died; an empty reason is a *normal*
//! kill. Build them with [`msg!`](crate::msg) and [`reason!`](crate::reason)
//! from anything `Serialize`, read them back with [`Message::decode`].
//! A whole struct or enum becomes a message with [`Message::from_value`].
//!
//! ```
//! use aemp::{msg, reason, Message, Reason};
//! let m: Message = msg!["resize", 640, 480];
//! assert_eq!(m.tag(), Some("resize"));
//! let (w, h): (u32, u32) = m.clone().without_tag().decode().unwrap();
//! assert_eq!(w * h, 307_200);
//! // A decode error names the element that did not fit.
//! let err = m.decode::<(String, String)>().unwrap_err();
//! assert!(matches!(err, aemp::Error::Decode { position: 1, .. }), "{err}");
//!
//! let r: Reason = reason!["die", "out of memory"];
//! assert_eq!((r.kind(), r.is_normal()), (Some("die"), false));
//! ```

use crate::error::{Error, Result};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::ops::{Deref, DerefMut};

/// A message: a list of JSON values, element 0 usually a string tag.
///
/// Local sends hand the vector over as is (no serialisation). It derefs to
/// `Vec<Value>`, so indexing, `len`, iteration and pushing work directly.
///
/// ```
/// use aemp::msg;
/// let m = msg!["write_file", "/tmp/x", 42];
/// assert_eq!(m.tag(), Some("write_file"));
/// let (tag, path, n): (String, String, u32) = m.decode().unwrap();
/// assert_eq!((tag.as_str(), path.as_str(), n), ("write_file", "/tmp/x", 42));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Message(pub Vec<Value>);

impl Message {
    /// An empty message.
    ///
    /// ```
    /// use aemp::{msg, Message};
    /// let mut m = Message::new();
    /// m.push("tag".into()); // it is a Vec<serde_json::Value> underneath
    /// m.push_value(&(1, "x")).unwrap();
    /// assert_eq!(m.to_string(), r#"["tag",[1,"x"]]"#);
    /// ```
    pub fn new() -> Self {
        Message(Vec::new())
    }

    /// Element 0, if it is a string.
    ///
    /// ```
    /// use aemp::msg;
    /// assert_eq!(msg!["ping", 1].tag(), Some("ping"));
    /// assert_eq!(msg![1, 2].tag(), None);
    /// assert_eq!(msg![].tag(), None);
    /// ```
    pub fn tag(&self) -> Option<&str> {
        self.0.first().and_then(Value::as_str)
    }

    /// Appends any serialisable value.
    ///
    /// ```
    /// use aemp::msg;
    /// use std::collections::BTreeMap;
    /// let mut m = msg!["config"];
    /// m.push_value(&BTreeMap::from([("depth", 3)])).unwrap();
    /// assert_eq!(m.to_string(), r#"["config",{"depth":3}]"#);
    /// // A map with non-string keys has no JSON form: an error, not a panic.
    /// assert!(m.push_value(&BTreeMap::from([((1, 2), 3)])).is_err());
    /// ```
    pub fn push_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.0.push(to_value(value)?);
        Ok(())
    }

    /// The message without its first element (the tag), as a new message.
    ///
    /// ```
    /// use aemp::msg;
    /// let m = msg!["move", 3, 4];
    /// let (x, y): (i32, i32) = m.without_tag().decode().unwrap();
    /// assert_eq!((x, y), (3, 4));
    /// ```
    pub fn without_tag(mut self) -> Message {
        if !self.0.is_empty() {
            self.0.remove(0);
        }
        self
    }

    /// Decodes the whole message into a tuple or struct (fields in element
    /// order), or an enum whose variant is named by element 0 (the shapes
    /// [`Message::from_value`] builds). Every element must be consumed: a message longer than `T`
    /// is an error, so a protocol change is noticed.
    ///
    /// Errors name the failing element's position and what was expected.
    ///
    /// ```
    /// # use aemp::msg;
    /// let err = msg!["data", "not a number"].decode::<(String, u64)>().unwrap_err();
    /// assert!(err.to_string().contains("element 1"), "{err}");
    /// ```
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        decode_values(&self.0)
    }

    /// Decodes the front of the message into `T` (a tuple, struct or enum
    /// variant, as [`decode`](Message::decode) does) and returns the
    /// elements after it as a message: for messages that end in a list of
    /// their own, such as a [`Reason`] appended by `mon_send`.
    ///
    /// ```
    /// use aemp::{msg, PortId, Reason};
    /// let port: PortId = "n#p".parse().unwrap();
    /// // What `mon_send(&port, &to, msg!["down", &port])` sends on a die.
    /// let m = msg!["down", &port, "die", "out of memory"];
    /// let ((tag, who), rest): ((String, PortId), _) = m.decode_prefix().unwrap();
    /// assert_eq!((tag.as_str(), &who), ("down", &port));
    /// assert_eq!(Reason::from(rest), Reason::die("out of memory"));
    /// ```
    pub fn decode_prefix<T: DeserializeOwned>(&self) -> Result<(T, Message)> {
        let (v, used) = decode_front(&self.0)?;
        Ok((v, Message(self.0[used..].to_vec())))
    }

    /// Takes the vector out.
    ///
    /// ```
    /// let v = aemp::msg!["a", 1].into_vec();
    /// assert_eq!(v, vec![serde_json::json!("a"), serde_json::json!(1)]);
    /// ```
    pub fn into_vec(self) -> Vec<Value> {
        self.0
    }
}

impl Deref for Message {
    type Target = Vec<Value>;
    fn deref(&self) -> &Vec<Value> {
        &self.0
    }
}

impl DerefMut for Message {
    fn deref_mut(&mut self) -> &mut Vec<Value> {
        &mut self.0
    }
}

impl From<Vec<Value>> for Message {
    fn from(v: Vec<Value>) -> Self {
        Message(v)
    }
}

impl From<Message> for Vec<Value> {
    fn from(m: Message) -> Self {
        m.0
    }
}

impl FromIterator<Value> for Message {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        Message(iter.into_iter().collect())
    }
}

impl IntoIterator for Message {
    type Item = Value;
    type IntoIter = std::vec::IntoIter<Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_json_list(f, &self.0)
    }
}

/// Why a port died: a list of JSON values; empty means a *normal* kill.
///
/// By convention element 0 is an identifier (`die`, `no_such_port`,
/// `transport_error`, `unhandled_message`, or your own) and element 1 a
/// human-readable text.
///
/// ```
/// use aemp::{reason, Reason};
/// assert!(Reason::normal().is_normal());
/// let r = reason!["my_error", "everything is broken"];
/// assert_eq!(r.kind(), Some("my_error"));
/// assert_eq!(r.to_string(), r#"["my_error","everything is broken"]"#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Reason(pub Vec<Value>);

impl Reason {
    /// The empty reason of a normal kill.
    ///
    /// ```
    /// use aemp::{reason, Reason};
    /// assert_eq!(Reason::normal(), reason![]);
    /// assert_eq!(Reason::normal().to_string(), "normal");
    /// ```
    pub fn normal() -> Self {
        Reason(Vec::new())
    }

    /// `["die", text]`: what a panic or failed init produces.
    ///
    /// ```
    /// use aemp::{reason, Reason};
    /// assert_eq!(Reason::die("disk full"), reason!["die", "disk full"]);
    /// ```
    pub fn die(text: impl Into<String>) -> Self {
        Reason(vec![Value::from("die"), Value::from(text.into())])
    }

    /// `["no_such_port", "cannot monitor nonexistent port", port]`.
    ///
    /// ```
    /// use aemp::Reason;
    /// let r = Reason::no_such_port("n#gone");
    /// assert_eq!(r.kind(), Some("no_such_port"));
    /// assert_eq!(r[2], "n#gone");
    /// ```
    pub fn no_such_port(port: &str) -> Self {
        Reason(vec![
            Value::from("no_such_port"),
            Value::from("cannot monitor nonexistent port"),
            Value::from(port),
        ])
    }

    /// `["transport_error", node, text]`: the connection to `node` failed.
    ///
    /// ```
    /// use aemp::Reason;
    /// let r = Reason::transport_error("db/1", "connect timeout");
    /// assert_eq!(r.to_string(), r#"["transport_error","db/1","connect timeout"]"#);
    /// ```
    pub fn transport_error(node: &str, text: impl Into<String>) -> Self {
        Reason(vec![
            Value::from("transport_error"),
            Value::from(node),
            Value::from(text.into()),
        ])
    }

    /// True for the empty reason of a normal kill.
    ///
    /// ```
    /// use aemp::{reason, Reason};
    /// assert!(reason![].is_normal());
    /// assert!(!Reason::die("x").is_normal());
    /// ```
    pub fn is_normal(&self) -> bool {
        self.0.is_empty()
    }

    /// Element 0 as a string, e.g. `"die"`.
    ///
    /// ```
    /// use aemp::{reason, Reason};
    /// assert_eq!(Reason::die("x").kind(), Some("die"));
    /// assert_eq!(reason![].kind(), None);
    /// ```
    pub fn kind(&self) -> Option<&str> {
        self.0.first().and_then(Value::as_str)
    }

    /// Decodes the reason like [`Message::decode`].
    ///
    /// ```
    /// use aemp::reason;
    /// let (kind, code): (String, u16) = reason!["http_error", 503].decode().unwrap();
    /// assert_eq!((kind.as_str(), code), ("http_error", 503));
    /// ```
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        decode_values(&self.0)
    }
}

impl From<Vec<Value>> for Reason {
    fn from(v: Vec<Value>) -> Self {
        Reason(v)
    }
}

impl From<Message> for Reason {
    fn from(m: Message) -> Self {
        Reason(m.0)
    }
}

impl Deref for Reason {
    type Target = Vec<Value>;
    fn deref(&self) -> &Vec<Value> {
        &self.0
    }
}

impl fmt::Display for Reason {
    /// `normal` for the empty reason, else the compact JSON list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("normal")
        } else {
            write_json_list(f, &self.0)
        }
    }
}

fn write_json_list(f: &mut fmt::Formatter<'_>, values: &[Value]) -> fmt::Result {
    f.write_str("[")?;
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{v}")?;
    }
    f.write_str("]")
}

/// Serialises a value for [`msg!`](crate::msg) and friends.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::Encode(e.to_string()))
}

#[doc(hidden)]
pub fn to_value_or_panic<T: Serialize + ?Sized>(value: &T) -> Value {
    match serde_json::to_value(value) {
        Ok(v) => v,
        Err(e) => panic!("msg!/reason!: cannot encode value as JSON: {e}"),
    }
}

/// Builds a [`Message`] from any `Serialize` values.
///
/// Panics only if a value cannot be represented as JSON (a map with
/// non-string keys, or a `Serialize` impl that fails); use
/// [`Message::push_value`] to handle that as an error.
///
/// ```
/// let m = aemp::msg!["point", 1, 2.5, vec!["a", "b"]];
/// assert_eq!(m.len(), 4);
/// ```
#[macro_export]
macro_rules! msg {
    () => { $crate::Message::new() };
    ($($x:expr),+ $(,)?) => {
        $crate::Message(::std::vec![$($crate::message::to_value_or_panic(&$x)),+])
    };
}

/// Builds a [`Reason`] from any `Serialize` values; `reason![]` is a normal
/// kill. Panics like [`msg!`](crate::msg).
///
/// ```
/// use aemp::{reason, Reason};
/// assert_eq!(reason![], Reason::normal());
/// let r = reason!["timeout", "no answer", 30];
/// assert_eq!((r.kind(), r.len()), (Some("timeout"), 3));
/// ```
#[macro_export]
macro_rules! reason {
    () => { $crate::Reason::normal() };
    ($($x:expr),+ $(,)?) => {
        $crate::Reason(::std::vec![$($crate::message::to_value_or_panic(&$x)),+])
    };
}

/// Decodes a list of values, naming the failing position on error.
fn decode_values<T: DeserializeOwned>(values: &[Value]) -> Result<T> {
    let (v, used) = decode_front(values)?;
    if used == values.len() {
        Ok(v)
    } else {
        Err(Error::Decode {
            message: shorten(values),
            position: used,
            problem: format!(
                "unexpected extra element(s): the type takes {used}, the message has {}",
                values.len()
            ),
        })
    }
}

/// Decodes `T` from the front of a list: the value and how many elements
/// it took.
fn decode_front<T: DeserializeOwned>(values: &[Value]) -> Result<(T, usize)> {
    let mut pos = 0usize;
    T::deserialize(ListDeserializer {
        values,
        pos: &mut pos,
    })
    .map(|v| (v, pos))
    .map_err(|e| Error::Decode {
        message: shorten(values),
        position: pos,
        problem: e.to_string(),
    })
}

fn shorten(values: &[Value]) -> String {
    let mut s = Message(values.to_vec()).to_string();
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Presents a slice of values as a sequence, recording how far decoding got.
struct ListDeserializer<'a, 'p> {
    values: &'a [Value],
    pos: &'p mut usize,
}

impl<'de, 'p> de::Deserializer<'de> for ListDeserializer<'de, 'p> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(ListAccess {
            values: self.values,
            pos: self.pos,
        })
    }

    /// A unit is the empty message (extra elements are reported after).
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    /// An enum is chosen by its tag (element 0); the variant's fields are
    /// the elements after it.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_enum(ListAccess {
            values: self.values,
            pos: self.pos,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option newtype_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

struct ListAccess<'a, 'p> {
    values: &'a [Value],
    pos: &'p mut usize,
}

impl<'de, 'p> SeqAccess<'de> for ListAccess<'de, 'p> {
    type Error = serde_json::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Self::Error> {
        match self.values.get(*self.pos) {
            None => Ok(None),
            Some(v) => {
                let out = seed.deserialize(v)?;
                *self.pos += 1;
                Ok(Some(out))
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.values.len() - *self.pos)
    }
}

impl<'de, 'p> EnumAccess<'de> for ListAccess<'de, 'p> {
    type Error = serde_json::Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), Self::Error> {
        let tag = match self.values.get(*self.pos) {
            Some(Value::String(tag)) => tag.as_str(),
            Some(other) => {
                return Err(de::Error::custom(format!(
                    "expected a string tag naming the variant, found {other}"
                )))
            }
            None => return Err(de::Error::custom("missing the tag naming the variant")),
        };
        let variant = seed.deserialize(de::value::BorrowedStrDeserializer::new(tag))?;
        *self.pos += 1;
        Ok((variant, self))
    }
}

impl<'de, 'p> VariantAccess<'de> for ListAccess<'de, 'p> {
    type Error = serde_json::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        mut self,
        seed: S,
    ) -> Result<S::Value, Self::Error> {
        match self.next_element_seed(seed)? {
            Some(v) => Ok(v),
            None => Err(de::Error::custom("missing the variant's value")),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(self)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn decode_struct_in_element_order() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Write {
            tag: String,
            path: String,
            len: u32,
        }
        let w: Write = crate::msg!["w", "/x", 3].decode().unwrap();
        assert_eq!(
            w,
            Write {
                tag: "w".into(),
                path: "/x".into(),
                len: 3
            }
        );
    }

    #[test]
    fn decode_errors_name_position_and_expectation() {
        let e = crate::msg!["a", 1]
            .decode::<(String, String)>()
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("element 1"), "{text}");
        assert!(text.contains("expected a string"), "{text}");
        let e = crate::msg!["a"].decode::<(String, u8)>().unwrap_err();
        assert!(e.to_string().contains("element 1"), "{e}");
        let e = crate::msg!["a", 1, 2].decode::<(String, u8)>().unwrap_err();
        assert!(e.to_string().contains("extra element"), "{e}");
    }

    #[test]
    fn reason_display() {
        assert_eq!(Reason::normal().to_string(), "normal");
        assert_eq!(Reason::die("x").to_string(), r#"["die","x"]"#);
    }
}
