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
use once_cell::race::OnceBox;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::ops::{Deref, DerefMut};

/// A message: a list of JSON values, element 0 usually a string tag.
///
/// Local sends hand the message over as is (no serialisation). It derefs to
/// `Vec<Value>`, so indexing, `len`, iteration and pushing work directly.
///
/// ```
/// use aemp::msg;
/// let m = msg!["write_file", "/tmp/x", 42];
/// assert_eq!(m.tag(), Some("write_file"));
/// let (tag, path, n): (String, String, u32) = m.decode().unwrap();
/// assert_eq!((tag.as_str(), path.as_str(), n), ("write_file", "/tmp/x", 42));
/// assert_eq!(m[2].as_u64(), Some(42)); // a Vec<serde_json::Value> underneath
/// ```
///
/// # Representation
///
/// A short message of scalars built with [`msg!`](crate::msg) is held in a
/// compact form inside the `Message` itself, with no heap allocation: up to
/// four elements, each null, a bool, a number or a string, with 39 bytes of
/// data between them (8 for a number, a string's length in UTF-8; enough
/// for a tag and a port ID). A message is usually built on one thread and
/// dropped on another, and memory allocated on one thread and freed on
/// another is what a local send mostly costs. The `Vec<Value>` is made on
/// the first deref, on the thread that reads the message, and kept;
/// [`tag`](Message::tag), `Clone`, `PartialEq` between compact messages,
/// `Serialize` and the network encoders read the compact form directly.
/// Every other message is a plain vector. The two forms behave the same in
/// every respect; a `Message` is 56 bytes.
///
/// So a compact message costs nothing on the heap until it is read through
/// the deref (indexing, `get`, `iter`, `decode`, `Debug`, `Display`): that
/// builds the vector, one allocation for it, one for its box and one per
/// string, on the reading thread. A message that is forwarded, matched by
/// its tag or sent to another node is never built, nor one read with the
/// accessors, which read either form in place: [`len`](Message::len),
/// [`str_at`](Message::str_at), [`u64_at`](Message::u64_at),
/// [`i64_at`](Message::i64_at), [`f64_at`](Message::f64_at),
/// [`bool_at`](Message::bool_at) and [`port_at`](Message::port_at).
///
/// ```
/// use aemp::msg;
/// let m = msg!["resize", 640, 0.5];
/// assert_eq!((m.len(), m.u64_at(1), m.f64_at(2)), (3, Some(640), Some(0.5)));
/// assert_eq!(m[1], 640); // the same element, through the vector (made now)
/// ```
///
/// ```
/// use aemp::{msg, Message};
/// use serde_json::json;
/// let compact = msg!["tag", 1, -2, 0.5];
/// let vector = Message::from_vec(vec![json!("tag"), json!(1), json!(-2), json!(0.5)]);
/// assert_eq!(compact, vector);
/// assert_eq!(format!("{compact:?}"), format!("{vector:?}"));
/// assert_eq!(compact.to_string(), r#"["tag",1,-2,0.5]"#);
/// ```
pub struct Message {
    repr: Repr,
}

enum Repr {
    /// The compact form and, once something derefs it, its vector. A
    /// `OnceBox` (one pointer) keeps `Message: Sync` (a `&Message` may be
    /// read from two threads at once) and the message small.
    Compact(Compact, OnceBox<Vec<Value>>),
    Vec(Vec<Value>),
}

impl Message {
    /// An empty message.
    ///
    /// ```
    /// use aemp::Message;
    /// let mut m = Message::new();
    /// m.push("tag".into()); // it is a Vec<serde_json::Value> underneath
    /// m.push_value(&(1, "x")).unwrap();
    /// assert_eq!(m.to_string(), r#"["tag",[1,"x"]]"#);
    /// ```
    pub fn new() -> Self {
        Message::from_vec(Vec::new())
    }

    /// A message of these values.
    ///
    /// ```
    /// use aemp::{msg, Message};
    /// use serde_json::json;
    /// assert_eq!(Message::from_vec(vec![json!("ping"), json!(1)]), msg!["ping", 1]);
    /// ```
    pub fn from_vec(values: Vec<Value>) -> Self {
        Message {
            repr: Repr::Vec(values),
        }
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
        match &self.repr {
            Repr::Compact(c, _) => match c.get(0) {
                Some(Elem::Str(s)) => Some(s),
                _ => None,
            },
            Repr::Vec(v) => v.first().and_then(Value::as_str),
        }
    }

    /// How many elements (the vector's `len`, without making the vector of
    /// a compact message).
    ///
    /// ```
    /// use aemp::msg;
    /// assert_eq!(msg!["add", 1, 2].len(), 3);
    /// assert_eq!(msg![].len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Compact(c, _) => c.len(),
            Repr::Vec(v) => v.len(),
        }
    }

    /// Whether the message has no elements (without making the vector of a
    /// compact message).
    ///
    /// ```
    /// use aemp::msg;
    /// assert!(msg![].is_empty());
    /// assert!(!msg!["x"].is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a borrowed view, from either form.
    fn elem(&self, i: usize) -> Option<Elem<'_>> {
        match &self.repr {
            Repr::Compact(c, _) => c.get(i),
            Repr::Vec(v) => v.get(i).map(Elem::Value),
        }
    }

    /// Element `i`, if it is a string: `m.get(i).and_then(Value::as_str)`
    /// without making the vector of a compact message (the cheap way to
    /// read a message: no allocation).
    ///
    /// ```
    /// use aemp::msg;
    /// let m = msg!["open", "/tmp/x", 3];
    /// assert_eq!(m.str_at(1), Some("/tmp/x"));
    /// assert_eq!(m.str_at(2), None); // a number
    /// assert_eq!(m.str_at(3), None); // out of range
    /// ```
    pub fn str_at(&self, i: usize) -> Option<&str> {
        self.elem(i)?.as_str()
    }

    /// Element `i`, if it is an integer that fits a `u64`, as
    /// [`Value::as_u64`] reads it, without making the vector of a compact
    /// message.
    ///
    /// ```
    /// use aemp::msg;
    /// let m = msg!["seek", 42, -1, 1.5];
    /// assert_eq!(m.u64_at(1), Some(42));
    /// assert_eq!((m.u64_at(2), m.u64_at(3)), (None, None)); // negative, float
    /// ```
    pub fn u64_at(&self, i: usize) -> Option<u64> {
        self.elem(i)?.as_u64()
    }

    /// Element `i`, if it is an integer that fits an `i64`, as
    /// [`Value::as_i64`] reads it, without making the vector of a compact
    /// message.
    ///
    /// ```
    /// use aemp::msg;
    /// let m = msg!["move", -3, u64::MAX, 0.5];
    /// assert_eq!(m.i64_at(1), Some(-3));
    /// assert_eq!((m.i64_at(2), m.i64_at(3)), (None, None)); // too big, float
    /// ```
    pub fn i64_at(&self, i: usize) -> Option<i64> {
        self.elem(i)?.as_i64()
    }

    /// Element `i`, if it is a number (of any kind), as [`Value::as_f64`]
    /// reads it, without making the vector of a compact message.
    ///
    /// ```
    /// use aemp::msg;
    /// let m = msg!["scale", 0.5, 2, "x"];
    /// assert_eq!((m.f64_at(1), m.f64_at(2)), (Some(0.5), Some(2.0)));
    /// assert_eq!(m.f64_at(3), None);
    /// ```
    pub fn f64_at(&self, i: usize) -> Option<f64> {
        self.elem(i)?.as_f64()
    }

    /// Element `i`, if it is a bool, without making the vector of a compact
    /// message.
    ///
    /// ```
    /// use aemp::msg;
    /// let m = msg!["verbose", true, 1];
    /// assert_eq!(m.bool_at(1), Some(true));
    /// assert_eq!(m.bool_at(2), None); // 1 is a number
    /// ```
    pub fn bool_at(&self, i: usize) -> Option<bool> {
        self.elem(i)?.as_bool()
    }

    /// Element `i` as a port ID: `m.get(i).map(PortId::try_from)` without
    /// making the vector of a compact message. `None` out of range, an
    /// error if the element is not a string or not a valid port ID.
    ///
    /// The cheap way to take a reply port from a request:
    ///
    /// ```
    /// use aemp::{msg, Error};
    /// let node = aemp::Node::anonymous();
    /// let me = node.port_fn(|_| {});
    /// let request = msg!["ping", &me];
    /// assert_eq!(request.port_at(1).unwrap().unwrap(), me);
    /// // The reply port of a `cal` or `call` request is its last element.
    /// assert_eq!(request.port_at(request.len() - 1).unwrap().unwrap(), me);
    /// assert!(request.port_at(2).is_none());
    /// assert!(matches!(msg!["ping", 7].port_at(1), Some(Err(Error::InvalidPortId { .. }))));
    /// ```
    pub fn port_at(&self, i: usize) -> Option<Result<crate::PortId>> {
        Some(match self.elem(i)? {
            Elem::Str(s) => crate::PortId::parse(s),
            Elem::Value(v) => crate::PortId::try_from(v),
            other => crate::PortId::try_from(&other.to_value()),
        })
    }

    /// The reply port of a request made with [`call`](crate::Node::call)
    /// or [`cal`](crate::Node::cal), which append it: the last element,
    /// read as [`port_at`](Message::port_at) reads one (no vector of
    /// values is made). An error names the message when it is empty, and
    /// the element when it is no port ID.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/reply-port").unwrap();
    /// let adder = node.port_fn(|m| {
    ///     let sum = m.i64_at(1).unwrap() + m.i64_at(2).unwrap();
    ///     aemp::snd(&m.reply_port().unwrap(), msg!["sum", sum]);
    /// });
    /// let answer = node.call(&adder, msg!["add", 2, 3], Duration::from_secs(5)).unwrap();
    /// assert_eq!(answer, msg!["sum", 5]);
    /// assert!(msg![].reply_port().is_err());
    /// assert!(msg!["add", 2, 3].reply_port().is_err()); // 3 is no port ID
    /// ```
    pub fn reply_port(&self) -> Result<crate::PortId> {
        match self.len().checked_sub(1).and_then(|i| self.port_at(i)) {
            Some(port) => port,
            None => Err(Error::Decode {
                message: self.to_string(),
                position: 0,
                problem: "an empty message has no reply port (call and cal append one)".into(),
            }),
        }
    }

    /// Appends any serialisable value. A short scalar appended to a compact
    /// message keeps it compact (appending through the vector, with
    /// `push`, makes the vector).
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
        let fits = self.push_compact(|c| value.serialize(ScalarSerializer(c)).is_ok());
        if !fits {
            let v = to_value(value)?;
            self.push(v);
        }
        Ok(())
    }

    /// Appends a string (as [`push_value`](Message::push_value) does,
    /// without a way to fail): a reply port added to a request.
    pub(crate) fn push_str(&mut self, s: &str) {
        if !self.push_compact(|c| c.push(Elem::Str(s))) {
            self.push(Value::from(s));
        }
    }

    /// Appends to a compact message with `push`, if it is one and `push`
    /// succeeds; false (and nothing changed) otherwise. `push` writes into
    /// a copy, so one that fails halfway changes nothing, and the message
    /// gets a new `OnceBox`: a vector made before would be stale.
    fn push_compact(&mut self, push: impl FnOnce(&mut Compact) -> bool) -> bool {
        let Repr::Compact(c, _) = &self.repr else {
            return false;
        };
        let mut c = *c;
        if !push(&mut c) {
            return false;
        }
        self.repr = Repr::Compact(c, OnceBox::new());
        true
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
        if let Repr::Compact(c, _) = &self.repr {
            return Message {
                repr: Repr::Compact(c.without_first(), OnceBox::new()),
            };
        }
        if !self.is_empty() {
            self.remove(0);
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
        decode_values(self)
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
        let (v, used) = decode_front(self)?;
        Ok((v, Message::from_vec(self[used..].to_vec())))
    }

    /// Takes the vector out.
    ///
    /// ```
    /// let v = aemp::msg!["a", 1].into_vec();
    /// assert_eq!(v, vec![serde_json::json!("a"), serde_json::json!(1)]);
    /// ```
    pub fn into_vec(self) -> Vec<Value> {
        match self.repr {
            // A vector made by a deref is left: taking it out of the
            // `OnceBox` is not possible, and this is as cheap.
            Repr::Compact(c, _) => c.values(),
            Repr::Vec(v) => v,
        }
    }

    /// Calls `f` with each element as a borrowed view, without making the
    /// vector of a compact message.
    pub(crate) fn for_each_elem(&self, mut f: impl FnMut(Elem<'_>)) {
        match &self.repr {
            Repr::Compact(c, _) => c.for_each(f),
            Repr::Vec(v) => v.iter().for_each(|v| f(Elem::Value(v))),
        }
    }

    /// Whether this message is in the compact form (for tests).
    #[cfg(test)]
    fn is_compact(&self) -> bool {
        matches!(self.repr, Repr::Compact(..))
    }

    /// Whether the vector of a compact message has been made (for tests).
    #[cfg(test)]
    fn is_materialised(&self) -> bool {
        match &self.repr {
            Repr::Compact(_, vec) => vec.get().is_some(),
            Repr::Vec(_) => true,
        }
    }
}

impl Deref for Message {
    type Target = Vec<Value>;
    fn deref(&self) -> &Vec<Value> {
        match &self.repr {
            Repr::Compact(c, vec) => vec.get_or_init(|| Box::new(c.values())),
            Repr::Vec(v) => v,
        }
    }
}

impl DerefMut for Message {
    /// Makes the vector of a compact message, which is then a vector.
    fn deref_mut(&mut self) -> &mut Vec<Value> {
        if let Repr::Compact(c, _) = &self.repr {
            self.repr = Repr::Vec(c.values());
        }
        match &mut self.repr {
            Repr::Vec(v) => v,
            Repr::Compact(..) => unreachable!("made a vector just above"),
        }
    }
}

impl Clone for Message {
    /// A compact message is copied as such (its vector, if made, is not).
    fn clone(&self) -> Self {
        Message {
            repr: match &self.repr {
                Repr::Compact(c, _) => Repr::Compact(*c, OnceBox::new()),
                Repr::Vec(v) => Repr::Vec(v.clone()),
            },
        }
    }
}

impl Default for Message {
    fn default() -> Self {
        Message::new()
    }
}

impl PartialEq for Message {
    /// Equal when the values are, whatever the forms.
    fn eq(&self, other: &Message) -> bool {
        match (&self.repr, &other.repr) {
            (Repr::Compact(a, _), Repr::Compact(b, _)) => a.len == b.len && a.iter().eq(b.iter()),
            _ => **self == **other,
        }
    }
}

impl fmt::Debug for Message {
    /// As the derived `Debug` of a tuple struct around the vector:
    /// `Message([String("tag"), Number(1)])`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Message").field(&**self).finish()
    }
}

impl Serialize for Message {
    /// As the list of values.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.repr {
            Repr::Compact(c, _) => s.collect_seq(c.iter()),
            Repr::Vec(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Message {
    /// From a list of values.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Value>::deserialize(d).map(Message::from_vec)
    }
}

impl From<Vec<Value>> for Message {
    fn from(v: Vec<Value>) -> Self {
        Message::from_vec(v)
    }
}

impl From<Message> for Vec<Value> {
    fn from(m: Message) -> Self {
        m.into_vec()
    }
}

impl FromIterator<Value> for Message {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        Message::from_vec(iter.into_iter().collect())
    }
}

impl IntoIterator for Message {
    type Item = Value;
    type IntoIter = std::vec::IntoIter<Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_json_list(f, self)
    }
}

/// How many elements a message can hold in its compact form.
const INLINE_LEN: usize = 4;
/// How many bytes of data (8 per number, the bytes of each string) the
/// elements of a compact message share: what keeps `Message` at 56 bytes
/// (and an inbox item at 64, a cache line).
const INLINE_BYTES: usize = 39;

/// What an element of the compact form is; its data is in `data`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    False,
    True,
    /// A `u64` (serde_json's non-negative integers), 8 bytes.
    PosInt,
    /// A negative `i64`, 8 bytes.
    NegInt,
    /// A finite `f64`, 8 bytes.
    Float,
    /// UTF-8 text.
    Str,
}

/// A borrowed view of one element of a message: what the compact form
/// stores, or a [`Value`] of the vector form.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Elem<'a> {
    Null,
    Bool(bool),
    U64(u64),
    /// Always negative (a non-negative integer is a `U64`, as in serde_json).
    I64(i64),
    /// Always finite.
    F64(f64),
    Str(&'a str),
    Value(&'a Value),
}

impl<'a> Elem<'a> {
    /// As [`Value::as_str`].
    fn as_str(self) -> Option<&'a str> {
        match self {
            Elem::Str(s) => Some(s),
            Elem::Value(v) => v.as_str(),
            _ => None,
        }
    }

    /// As [`Value::as_u64`]: a non-negative integer.
    fn as_u64(self) -> Option<u64> {
        match self {
            Elem::U64(n) => Some(n),
            Elem::Value(v) => v.as_u64(),
            _ => None,
        }
    }

    /// As [`Value::as_i64`]: an integer in `i64`'s range.
    fn as_i64(self) -> Option<i64> {
        match self {
            Elem::U64(n) => i64::try_from(n).ok(),
            Elem::I64(n) => Some(n),
            Elem::Value(v) => v.as_i64(),
            _ => None,
        }
    }

    /// As [`Value::as_f64`]: any number, converted.
    fn as_f64(self) -> Option<f64> {
        match self {
            Elem::U64(n) => Some(n as f64),
            Elem::I64(n) => Some(n as f64),
            Elem::F64(f) => Some(f),
            Elem::Value(v) => v.as_f64(),
            _ => None,
        }
    }

    /// As [`Value::as_bool`].
    fn as_bool(self) -> Option<bool> {
        match self {
            Elem::Bool(b) => Some(b),
            Elem::Value(v) => v.as_bool(),
            _ => None,
        }
    }
}

impl Elem<'_> {
    /// The element as an owned value (allocates for a string).
    pub(crate) fn to_value(self) -> Value {
        match self {
            Elem::Null => Value::Null,
            Elem::Bool(b) => Value::Bool(b),
            Elem::U64(n) => Value::from(n),
            Elem::I64(n) => Value::from(n),
            Elem::F64(f) => Value::from(f),
            Elem::Str(s) => Value::from(s),
            Elem::Value(v) => v.clone(),
        }
    }
}

impl Serialize for Elem<'_> {
    /// The calls `Value`'s own `Serialize` makes for the same value.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Elem::Null => s.serialize_unit(),
            Elem::Bool(b) => s.serialize_bool(b),
            Elem::U64(n) => s.serialize_u64(n),
            Elem::I64(n) => s.serialize_i64(n),
            Elem::F64(f) => s.serialize_f64(f),
            Elem::Str(t) => s.serialize_str(t),
            Elem::Value(v) => v.serialize(s),
        }
    }
}

/// A short message of scalars, held without any heap allocation: up to
/// [`INLINE_LEN`] elements whose data fit together in [`INLINE_BYTES`].
/// (Byte arrays only, so that it has no padding and `Message` stays at 64
/// bytes.)
#[derive(Clone, Copy)]
struct Compact {
    len: u8,
    kinds: [Kind; INLINE_LEN],
    /// Where each element's data ends in `data` (it starts where the
    /// previous one's ends); null and bools have none.
    ends: [u8; INLINE_LEN],
    data: [u8; INLINE_BYTES],
}

impl Compact {
    const EMPTY: Compact = Compact {
        len: 0,
        kinds: [Kind::Null; INLINE_LEN],
        ends: [0; INLINE_LEN],
        data: [0; INLINE_BYTES],
    };

    fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Where element `i`'s data starts.
    fn start(&self, i: usize) -> usize {
        match i.checked_sub(1) {
            Some(prev) => usize::from(self.ends[prev]),
            None => 0,
        }
    }

    /// Appends an element; false (and nothing changed) if it does not fit.
    fn push(&mut self, e: Elem<'_>) -> bool {
        let i = self.len();
        if i >= INLINE_LEN {
            return false;
        }
        let (kind, bytes): (Kind, &[u8]) = match e {
            Elem::Null => (Kind::Null, &[]),
            Elem::Bool(false) => (Kind::False, &[]),
            Elem::Bool(true) => (Kind::True, &[]),
            Elem::U64(n) => return self.push_word(Kind::PosInt, n.to_le_bytes()),
            Elem::I64(n) if n < 0 => return self.push_word(Kind::NegInt, n.to_le_bytes()),
            Elem::I64(n) => return self.push_word(Kind::PosInt, n.to_le_bytes()),
            Elem::F64(f) if f.is_finite() => return self.push_word(Kind::Float, f.to_le_bytes()),
            Elem::F64(_) => (Kind::Null, &[]),
            Elem::Str(s) => (Kind::Str, s.as_bytes()),
            Elem::Value(v) => match v {
                Value::Null => (Kind::Null, &[]),
                Value::Bool(b) => return self.push(Elem::Bool(*b)),
                Value::String(s) => return self.push(Elem::Str(s)),
                Value::Number(n) => return self.push(number_elem(n)),
                Value::Array(_) | Value::Object(_) => return false,
            },
        };
        self.push_bytes(kind, bytes)
    }

    fn push_word(&mut self, kind: Kind, word: [u8; 8]) -> bool {
        self.push_bytes(kind, &word)
    }

    #[inline]
    fn push_bytes(&mut self, kind: Kind, bytes: &[u8]) -> bool {
        let i = self.len();
        let start = self.start(i);
        let end = start + bytes.len();
        match (self.data.get_mut(start..end), self.kinds.get_mut(i)) {
            (Some(to), Some(k)) => {
                to.copy_from_slice(bytes);
                *k = kind;
                self.ends[i] = end as u8;
                self.len += 1;
                true
            }
            _ => false,
        }
    }

    fn get(&self, i: usize) -> Option<Elem<'_>> {
        if i >= self.len() {
            return None;
        }
        let data = self.data.get(self.start(i)..usize::from(self.ends[i]))?;
        let word = || -> [u8; 8] { data.try_into().unwrap_or_default() };
        Some(match self.kinds[i] {
            Kind::Null => Elem::Null,
            Kind::False => Elem::Bool(false),
            Kind::True => Elem::Bool(true),
            Kind::PosInt => Elem::U64(u64::from_le_bytes(word())),
            Kind::NegInt => Elem::I64(i64::from_le_bytes(word())),
            Kind::Float => Elem::F64(f64::from_le_bytes(word())),
            // Only whole strings are copied in, so this is valid UTF-8.
            Kind::Str => Elem::Str(std::str::from_utf8(data).unwrap_or_default()),
        })
    }

    fn iter(&self) -> impl ExactSizeIterator<Item = Elem<'_>> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or(Elem::Null))
    }

    /// Calls `f` with each element (a loop over the kinds rather than
    /// `get`: no `Option`s of elements to shuffle on the stack).
    fn for_each(&self, mut f: impl FnMut(Elem<'_>)) {
        let mut start = 0;
        for (&kind, &end) in self.kinds.iter().zip(&self.ends).take(self.len()) {
            let end = usize::from(end);
            let data = self.data.get(start..end).unwrap_or_default();
            start = end;
            let word = || -> [u8; 8] { data.try_into().unwrap_or_default() };
            match kind {
                Kind::Null => f(Elem::Null),
                Kind::False => f(Elem::Bool(false)),
                Kind::True => f(Elem::Bool(true)),
                Kind::PosInt => f(Elem::U64(u64::from_le_bytes(word()))),
                Kind::NegInt => f(Elem::I64(i64::from_le_bytes(word()))),
                Kind::Float => f(Elem::F64(f64::from_le_bytes(word()))),
                Kind::Str => f(Elem::Str(std::str::from_utf8(data).unwrap_or_default())),
            }
        }
    }

    /// The elements as values (written out rather than through `get`: the
    /// compiler then builds each value in place).
    fn values(&self) -> Vec<Value> {
        let mut v = Vec::with_capacity(self.len());
        let mut start = 0;
        for (&kind, &end) in self.kinds.iter().zip(&self.ends).take(self.len()) {
            let end = usize::from(end);
            let data = self.data.get(start..end).unwrap_or_default();
            start = end;
            let word = || -> [u8; 8] { data.try_into().unwrap_or_default() };
            // A push in each arm: the value is then written into the
            // vector, not through a temporary on the stack.
            match kind {
                Kind::Null => v.push(Value::Null),
                Kind::False => v.push(Value::Bool(false)),
                Kind::True => v.push(Value::Bool(true)),
                Kind::PosInt => v.push(Value::from(u64::from_le_bytes(word()))),
                Kind::NegInt => v.push(Value::from(i64::from_le_bytes(word()))),
                Kind::Float => v.push(Value::from(f64::from_le_bytes(word()))),
                Kind::Str => v.push(Value::String(
                    std::str::from_utf8(data).unwrap_or_default().to_owned(),
                )),
            }
        }
        v
    }

    /// The same elements without the first.
    fn without_first(&self) -> Compact {
        let mut c = Compact::EMPTY;
        for e in self.iter().skip(1) {
            // Fits: fewer elements and no more data than `self`.
            c.push(e);
        }
        c
    }
}

/// A serde_json number as an element, kept exactly (u64, negative i64 or
/// f64, as serde_json tells them apart).
fn number_elem(n: &serde_json::Number) -> Elem<'static> {
    if let Some(u) = n.as_u64() {
        Elem::U64(u)
    } else if let Some(i) = n.as_i64() {
        Elem::I64(i)
    } else {
        // Neither integer kind: a float (finite, or serde_json would have
        // made it null).
        Elem::F64(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Why a value has no compact form (it is not a scalar, or not small).
#[derive(Debug)]
struct NotScalar;

impl fmt::Display for NotScalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a small scalar")
    }
}

impl std::error::Error for NotScalar {}

impl serde::ser::Error for NotScalar {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotScalar
    }
}

/// A serializer that appends one scalar to a compact message, making the
/// element serde_json's `to_value` would make, or fails with
/// [`NotScalar`] for anything else (sequences, maps, long text).
struct ScalarSerializer<'a>(&'a mut Compact);

impl ScalarSerializer<'_> {
    fn put(self, e: Elem<'_>) -> Result<(), NotScalar> {
        if self.0.push(e) {
            Ok(())
        } else {
            Err(NotScalar)
        }
    }

    /// Appends data of one kind (each `serialize_*` of a common scalar
    /// calls this directly: one branch less to mispredict than `put`).
    #[inline]
    fn put_bytes(self, kind: Kind, bytes: &[u8]) -> Result<(), NotScalar> {
        if self.0.push_bytes(kind, bytes) {
            Ok(())
        } else {
            Err(NotScalar)
        }
    }

    /// An integer as serde_json makes it: non-negative ones are `u64`.
    #[inline]
    fn put_i64(self, v: i64) -> Result<(), NotScalar> {
        let kind = if v < 0 { Kind::NegInt } else { Kind::PosInt };
        self.put_bytes(kind, &v.to_le_bytes())
    }

    #[inline]
    fn put_u64(self, v: u64) -> Result<(), NotScalar> {
        self.put_bytes(Kind::PosInt, &v.to_le_bytes())
    }

    /// A float as serde_json makes it: null unless finite.
    #[inline]
    fn put_f64(self, v: f64) -> Result<(), NotScalar> {
        if v.is_finite() {
            self.put_bytes(Kind::Float, &v.to_le_bytes())
        } else {
            self.put_bytes(Kind::Null, &[])
        }
    }

    /// A value serde_json made (numbers: so their kind is serde_json's).
    fn put_value(self, v: serde_json::Result<Value>) -> Result<(), NotScalar> {
        match v {
            Ok(v) => self.put(Elem::Value(&v)),
            Err(_) => Err(NotScalar),
        }
    }
}

macro_rules! via_serde_json {
    ($($f:ident($t:ty);)*) => {
        $(fn $f(self, v: $t) -> Result<(), NotScalar> {
            self.put_value(serde::Serializer::$f(serde_json::value::Serializer, v))
        })*
    };
}

impl serde::Serializer for ScalarSerializer<'_> {
    type Ok = ();
    type Error = NotScalar;
    type SerializeSeq = serde::ser::Impossible<(), NotScalar>;
    type SerializeTuple = serde::ser::Impossible<(), NotScalar>;
    type SerializeTupleStruct = serde::ser::Impossible<(), NotScalar>;
    type SerializeTupleVariant = serde::ser::Impossible<(), NotScalar>;
    type SerializeMap = serde::ser::Impossible<(), NotScalar>;
    type SerializeStruct = serde::ser::Impossible<(), NotScalar>;
    type SerializeStructVariant = serde::ser::Impossible<(), NotScalar>;

    // The common numbers as serde_json's value serializer makes them
    // (widened to i64 or u64; f32 widened to f64, as `Number::from_f32`;
    // the tests compare every kind with serde_json's); the rare ones
    // through it.
    via_serde_json! {
        serialize_i128(i128);
        serialize_u128(u128);
    }

    fn serialize_i8(self, v: i8) -> Result<(), NotScalar> {
        self.put_i64(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<(), NotScalar> {
        self.put_i64(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result<(), NotScalar> {
        self.put_i64(v.into())
    }

    fn serialize_i64(self, v: i64) -> Result<(), NotScalar> {
        self.put_i64(v)
    }

    fn serialize_u8(self, v: u8) -> Result<(), NotScalar> {
        self.put_u64(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<(), NotScalar> {
        self.put_u64(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), NotScalar> {
        self.put_u64(v.into())
    }

    fn serialize_u64(self, v: u64) -> Result<(), NotScalar> {
        self.put_u64(v)
    }

    fn serialize_f32(self, v: f32) -> Result<(), NotScalar> {
        self.put_f64(v.into())
    }

    fn serialize_f64(self, v: f64) -> Result<(), NotScalar> {
        self.put_f64(v)
    }

    fn serialize_bool(self, v: bool) -> Result<(), NotScalar> {
        self.put_bytes(if v { Kind::True } else { Kind::False }, &[])
    }

    fn serialize_char(self, v: char) -> Result<(), NotScalar> {
        self.put(Elem::Str(v.encode_utf8(&mut [0; 4])))
    }

    fn serialize_str(self, v: &str) -> Result<(), NotScalar> {
        self.put_bytes(Kind::Str, v.as_bytes())
    }

    fn serialize_bytes(self, _: &[u8]) -> Result<(), NotScalar> {
        Err(NotScalar)
    }

    fn serialize_none(self) -> Result<(), NotScalar> {
        self.put_bytes(Kind::Null, &[])
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), NotScalar> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), NotScalar> {
        self.put_bytes(Kind::Null, &[])
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), NotScalar> {
        self.put_bytes(Kind::Null, &[])
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), NotScalar> {
        self.put(Elem::Str(variant))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), NotScalar> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotScalar> {
        Err(NotScalar)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotScalar> {
        Err(NotScalar)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotScalar> {
        Err(NotScalar)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotScalar> {
        Err(NotScalar)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotScalar> {
        Err(NotScalar)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotScalar> {
        Err(NotScalar)
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, NotScalar> {
        Err(NotScalar)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotScalar> {
        Err(NotScalar)
    }
}

/// Builds the message of [`msg!`](crate::msg): compact while every element
/// is a small scalar, else a vector.
#[doc(hidden)]
pub struct MsgBuilder {
    compact: Compact,
    /// Set once an element did not fit the compact form.
    vec: Option<Vec<Value>>,
}

impl MsgBuilder {
    #[doc(hidden)]
    #[inline]
    pub fn new() -> MsgBuilder {
        MsgBuilder {
            compact: Compact::EMPTY,
            vec: None,
        }
    }

    /// Appends a value; panics like [`to_value_or_panic`].
    #[doc(hidden)]
    #[inline]
    pub fn push<T: Serialize + ?Sized>(&mut self, value: &T) {
        if let Some(v) = &mut self.vec {
            v.push(to_value_or_panic(value));
            return;
        }
        let len = self.compact.len;
        if value.serialize(ScalarSerializer(&mut self.compact)).is_ok() {
            return;
        }
        // A `Serialize` impl may have written and failed after: undo.
        self.compact.len = len;
        let mut v = Vec::with_capacity(self.compact.len() + 2);
        v.extend(self.compact.iter().map(Elem::to_value));
        v.push(to_value_or_panic(value));
        self.vec = Some(v);
    }

    #[doc(hidden)]
    #[inline]
    pub fn finish(self) -> Message {
        match self.vec {
            Some(v) => Message::from_vec(v),
            None => Message {
                repr: Repr::Compact(self.compact, OnceBox::new()),
            },
        }
    }
}

impl Default for MsgBuilder {
    fn default() -> Self {
        MsgBuilder::new()
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
        Reason(m.into_vec())
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
        {
            let mut b = $crate::message::MsgBuilder::new();
            $(b.push(&$x);)+
            b.finish()
        }
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
    let mut s = Message::from_vec(values.to_vec()).to_string();
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
    fn the_reply_port_is_the_last_element_in_either_form() {
        let me = crate::PortId::parse("n1#reply").unwrap();
        // Compact (short scalars), and the vector form (an array first).
        let compact = crate::msg!["add", 2, &me];
        let vector = crate::msg![[1, 2], &me];
        assert_eq!(compact.reply_port().unwrap(), me);
        assert_eq!(vector.reply_port().unwrap(), me);
        // What is wrong is named: the empty message, the element.
        let e = crate::msg![].reply_port().unwrap_err();
        assert!(
            matches!(&e, Error::Decode { message, position: 0, .. } if message == "[]"),
            "{e}"
        );
        let e = crate::msg!["add", 2, 3].reply_port().unwrap_err();
        assert!(matches!(&e, Error::InvalidPortId { .. }), "{e}");
        assert!(e.to_string().contains('3'), "{e}");
        let e = crate::msg!["add", "#x"].reply_port().unwrap_err();
        assert!(e.to_string().contains("#x"), "{e}");
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

    use crate::transport::framing::{encode_message, encode_packet, Framing};
    use proptest::prelude::*;
    use serde_json::json;

    /// The accessors read what indexing the vector reads, in range and
    /// past it (without making the vector: checked before the first deref).
    fn assert_accessors(m: &Message, values: &[Value]) {
        assert_eq!(m.len(), values.len());
        assert_eq!(m.is_empty(), values.is_empty());
        for i in 0..values.len() + 2 {
            let v = values.get(i);
            assert_eq!(m.str_at(i), v.and_then(Value::as_str), "{i}");
            assert_eq!(m.u64_at(i), v.and_then(Value::as_u64), "{i}");
            assert_eq!(m.i64_at(i), v.and_then(Value::as_i64), "{i}");
            assert_eq!(m.bool_at(i), v.and_then(Value::as_bool), "{i}");
            let (f, g) = (m.f64_at(i), v.and_then(Value::as_f64));
            assert_eq!(f.map(f64::to_bits), g.map(f64::to_bits), "{i}");
            let port = |r: Result<crate::PortId>| r.map_err(|e| e.to_string());
            assert_eq!(
                m.port_at(i).map(port),
                v.map(|v| port(crate::PortId::try_from(v))),
                "{i}"
            );
        }
    }

    /// Everything the two forms must agree on.
    fn assert_same(m: &Message, values: &[Value]) {
        let materialised = m.is_materialised();
        assert_accessors(m, values);
        assert_eq!(
            m.is_materialised(),
            materialised,
            "the accessors made the vector"
        );
        let v = Message::from_vec(values.to_vec());
        assert_eq!(*m, v);
        assert_eq!(v, *m);
        assert_eq!(m.tag(), v.tag());
        assert_eq!(format!("{m:?}"), format!("{v:?}"));
        assert_eq!(format!("{m:#?}"), format!("{v:#?}"));
        assert_eq!(m.to_string(), v.to_string());
        assert_eq!(
            serde_json::to_string(m).unwrap(),
            serde_json::to_string(values).unwrap()
        );
        let (mut a, mut b) = (Vec::new(), Vec::new());
        ciborium::into_writer(m, &mut a).unwrap();
        ciborium::into_writer(&values, &mut b).unwrap();
        assert_eq!(a, b);
        for f in Framing::ALL {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            encode_message(f, "p", m, &mut a).unwrap();
            encode_packet(f, "p", values, &mut b).unwrap();
            assert_eq!(a, b, "{f:?}");
        }
        assert_eq!(m.clone(), v);
        assert_eq!(m.clone().into_vec(), values);
        assert_eq!(m.len(), values.len());
        assert_eq!(&m[..], values);
        assert_accessors(m, values);
        assert_accessors(&v, values);
    }

    #[derive(Serialize)]
    struct Unit;
    #[derive(Serialize)]
    struct Newtype(i8);
    #[derive(Serialize)]
    enum Choice {
        Left,
        Right(u8),
    }

    #[test]
    fn compact_equals_vec_for_every_scalar_kind() {
        let cases: Vec<(Message, Value)> = vec![
            (crate::msg![()], Value::Null),
            (crate::msg![None::<u8>], Value::Null),
            (crate::msg![Some(5u8)], json!(5)),
            (crate::msg![Unit], Value::Null),
            (crate::msg![Newtype(-3)], json!(-3)),
            (crate::msg![Choice::Left], json!("Left")),
            (crate::msg![true], json!(true)),
            (crate::msg![false], json!(false)),
            (crate::msg![0u64], json!(0)),
            (crate::msg![1u64], json!(1)),
            (crate::msg![1i64], json!(1)),
            (crate::msg![-1i8], json!(-1)),
            (crate::msg![u64::MAX], json!(u64::MAX)),
            (crate::msg![i64::MIN], json!(i64::MIN)),
            (crate::msg![i64::MAX], json!(i64::MAX)),
            (crate::msg![-5i128], json!(-5)),
            (crate::msg![u128::from(u64::MAX)], json!(u64::MAX)),
            (crate::msg![0.0], json!(0.0)),
            (crate::msg![-0.0], json!(-0.0)),
            (crate::msg![1.5f32], json!(1.5f32)),
            (crate::msg![0.1f32], json!(0.1f32)),
            (crate::msg![f64::MIN_POSITIVE], json!(f64::MIN_POSITIVE)),
            (crate::msg![f64::NAN], Value::Null),
            (crate::msg![f64::INFINITY], Value::Null),
            (crate::msg![f32::NEG_INFINITY], Value::Null),
            (crate::msg![""], json!("")),
            (crate::msg!['é'], json!("é")),
            (crate::msg!["caf\u{e9} \"q\"\n"], json!("caf\u{e9} \"q\"\n")),
        ];
        for (m, v) in cases {
            assert!(m.is_compact(), "{v}");
            assert_same(&m, &[v]);
        }
        // serde_json's kinds of number are kept apart, as in `Value`.
        assert_ne!(crate::msg![1.0], crate::msg![1]);
        assert_ne!(crate::msg![1.0], Message::from_vec(vec![json!(1)]));
        assert_eq!(crate::msg![-0.0], crate::msg![0.0]);
        assert_eq!(crate::msg![1u64], Message::from_vec(vec![json!(1)]));
        // Not scalars: the vector form, as before.
        let m = crate::msg!["tag", [1, 2], Choice::Right(1)];
        assert!(!m.is_compact());
        assert_same(&m, &[json!("tag"), json!([1, 2]), json!({"Right": 1})]);
        let m = crate::msg![serde_bytes_like()];
        assert!(!m.is_compact());
        assert_same(&m, &[json!([1, 2])]);
    }

    /// Bytes serialise as a list of numbers in serde_json.
    fn serde_bytes_like() -> impl Serialize {
        struct B;
        impl Serialize for B {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&[1, 2])
            }
        }
        B
    }

    #[test]
    fn compact_limits() {
        let full = "x".repeat(INLINE_BYTES);
        let over = "x".repeat(INLINE_BYTES + 1);
        for (m, compact) in [
            (crate::msg![full.as_str()], true),
            (crate::msg![over.as_str()], false),
            (crate::msg!["tag", &full[3..]], true),
            (crate::msg!["tag", &full[2..]], false),
            (crate::msg!["tag", 1, &full[3 + 8..]], true),
            (crate::msg!["tag", 1, &full[2 + 8..]], false),
            (crate::msg![1, 2, 3, 4], true),
            (crate::msg![1, 2, 3, 4, 5], false),
            (crate::msg![(), (), (), ()], true),
            (crate::msg![(), (), (), (), ()], false),
            (crate::msg![1.5, -2, 3u8, "four"], true),
        ] {
            assert_eq!(m.is_compact(), compact, "{m}");
            let values = m.clone().into_vec();
            assert_same(&m, &values);
        }
        // What the figures send, and a ping with an anonymous node's port.
        assert!(crate::msg!["tag", u64::MAX].is_compact());
        let node = crate::Node::anonymous();
        let port = node.port_fn(|_| {});
        assert!(crate::msg!["ping", &port].is_compact(), "{port}");
        node.kil(&port, Reason::normal()).unwrap();
        // Messages stay small: an inbox item is a message and a pointer.
        assert!(std::mem::size_of::<Message>() <= 56);
    }

    #[test]
    fn reading_and_changing_a_compact_message() {
        let m = crate::msg!["tag", 7, "x"];
        assert_eq!(m.tag(), Some("tag"));
        assert!(!m.is_materialised(), "tag() reads the compact form");
        assert!(m.clone() == m && !m.is_materialised());
        assert_eq!(m.without_tag(), crate::msg![7, "x"]);
        let m = crate::msg!["tag", 7, "x"];
        let c = m.clone();
        assert_eq!(m[1].as_u64(), Some(7));
        assert!(m.is_materialised() && m.is_compact());
        assert!(!c.is_materialised() && c.is_compact());
        assert_eq!(m.without_tag(), crate::msg![7, "x"]);
        let mut m = crate::msg!["tag", 7];
        m.push(json!([1]));
        m[1] = json!(8);
        assert!(!m.is_compact());
        assert_same(&m, &[json!("tag"), json!(8), json!([1])]);
        let mut m = crate::msg!["tag", 7];
        m.push_value(&"more").unwrap();
        assert!(m.is_compact() && !m.is_materialised());
        assert_same(&m, &[json!("tag"), json!(7), json!("more")]);
        // After a deref, the vector made is not served stale.
        assert_eq!(m[2], "more");
        m.push_value(&1.5).unwrap();
        assert!(m.is_compact());
        assert_same(&m, &[json!("tag"), json!(7), json!("more"), json!(1.5)]);
        // Past the compact form's room, the vector.
        m.push_value(&()).unwrap();
        assert!(!m.is_compact());
        assert_same(
            &m,
            &[
                json!("tag"),
                json!(7),
                json!("more"),
                json!(1.5),
                json!(null),
            ],
        );
        // A reply port appended to a request: compact while it fits.
        let mut m = crate::msg!["q", 7];
        m.push_str("anon/x#y");
        assert!(m.is_compact());
        assert_same(&m, &[json!("q"), json!(7), json!("anon/x#y")]);
        let long = "n".repeat(INLINE_BYTES);
        m.push_str(&long);
        assert!(!m.is_compact());
        assert_same(&m, &[json!("q"), json!(7), json!("anon/x#y"), json!(long)]);
        let mut m = crate::msg!["tag"];
        m.push_value(&[1, 2]).unwrap();
        assert!(!m.is_compact());
        assert_same(&m, &[json!("tag"), json!([1, 2])]);
        let m = crate::msg![1, "a"];
        assert_eq!(m.tag(), None);
        let (n, s): (u8, String) = m.decode().unwrap();
        assert_eq!((n, s.as_str()), (1, "a"));
        let (n, rest): ((u8,), Message) = m.decode_prefix().unwrap();
        assert_eq!((n.0, rest), (1, crate::msg!["a"]));
        assert_eq!(
            m.clone().into_iter().collect::<Vec<_>>(),
            [json!(1), json!("a")]
        );
        assert_eq!(Vec::from(m.clone()), [json!(1), json!("a")]);
        assert_eq!(Reason::from(m), crate::reason![1, "a"]);
        assert_eq!(crate::msg![], Message::default());
        assert!(crate::msg!["a"].without_tag().is_empty());
        let back: Message = serde_json::from_str(r#"["tag",1]"#).unwrap();
        assert_eq!(back, crate::msg!["tag", 1]);
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Message>();
    }

    #[test]
    fn accessors_read_either_form() {
        let port = "anon/a#b";
        let compact = crate::msg!["tag", port, -2, 1.5];
        let vector = Message::from_vec(vec![json!("tag"), json!(port), json!(-2), json!(1.5)]);
        for m in [&compact, &vector] {
            assert_eq!(m.str_at(0), Some("tag"));
            assert_eq!(m.port_at(1).unwrap().unwrap().as_str(), port);
            assert_eq!(
                (m.i64_at(2), m.u64_at(2), m.f64_at(2)),
                (Some(-2), None, Some(-2.0))
            );
            assert_eq!(
                (m.f64_at(3), m.i64_at(3), m.str_at(3)),
                (Some(1.5), None, None)
            );
            assert_eq!((m.str_at(4), m.port_at(4).is_none()), (None, true));
            let err = m.port_at(2).unwrap().unwrap_err();
            assert!(matches!(err, Error::InvalidPortId { .. }), "{err}");
            assert!(
                m.port_at(0).unwrap().is_ok(),
                "a bare node ID is a node port"
            );
        }
        assert!(!compact.is_materialised());
        // Without the tag, the elements move down one.
        let rest = compact.clone().without_tag();
        assert_eq!(
            (rest.len(), rest.i64_at(1), rest.str_at(3)),
            (3, Some(-2), None)
        );
        assert_eq!(rest.port_at(0).unwrap().unwrap().as_str(), port);
        assert_eq!(vector.clone().without_tag().i64_at(1), Some(-2));
        // After a deref the compact form still answers, the same.
        assert_eq!(compact[1], port);
        assert!(compact.is_materialised());
        assert_eq!(
            (compact.str_at(1), compact.i64_at(2)),
            (Some(port), Some(-2))
        );
        // A changed message answers with its changes.
        let mut m = compact.clone();
        m[2] = json!(7);
        m.push(json!(true));
        assert_eq!(
            (m.u64_at(2), m.bool_at(4), m.len()),
            (Some(7), Some(true), 5)
        );
        // Integers at the edges of i64 and u64.
        let m = crate::msg![u64::MAX, i64::MIN, i64::MAX as u64 + 1, i64::MAX];
        assert_eq!((m.u64_at(0), m.i64_at(0)), (Some(u64::MAX), None));
        assert_eq!((m.u64_at(1), m.i64_at(1)), (None, Some(i64::MIN)));
        assert_eq!(m.i64_at(2), None);
        assert_eq!(m.i64_at(3), Some(i64::MAX));
        assert_same(
            &m,
            &[
                json!(u64::MAX),
                json!(i64::MIN),
                json!(i64::MAX as u64 + 1),
                json!(i64::MAX),
            ],
        );
    }

    #[test]
    fn a_serialize_that_fails_after_writing_panics_as_before() {
        struct Liar;
        impl Serialize for Liar {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let _ = s.serialize_str("written");
                Err(serde::ser::Error::custom("but failed"))
            }
        }
        let r = std::panic::catch_unwind(|| crate::msg!["tag", Liar]);
        assert!(r.is_err());
        // Appended, an error, and the message unchanged.
        let mut m = crate::msg!["tag"];
        assert!(m.push_value(&Liar).is_err());
        assert!(m.is_compact());
        assert_same(&m, &[json!("tag")]);
    }

    /// A scalar that serde may give the serializer.
    #[derive(Debug, Clone)]
    enum Scalar {
        Unit,
        Bool(bool),
        U64(u64),
        I64(i64),
        I32(i32),
        F64(f64),
        F32(f32),
        Str(String),
        Char(char),
        Seq(Vec<u8>),
    }

    impl Serialize for Scalar {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                Scalar::Unit => s.serialize_unit(),
                Scalar::Bool(b) => s.serialize_bool(*b),
                Scalar::U64(n) => s.serialize_u64(*n),
                Scalar::I64(n) => s.serialize_i64(*n),
                Scalar::I32(n) => s.serialize_i32(*n),
                Scalar::F64(f) => s.serialize_f64(*f),
                Scalar::F32(f) => s.serialize_f32(*f),
                Scalar::Str(t) => s.serialize_str(t),
                Scalar::Char(c) => s.serialize_char(*c),
                Scalar::Seq(v) => v.serialize(s),
            }
        }
    }

    fn scalar() -> impl Strategy<Value = Scalar> {
        prop_oneof![
            Just(Scalar::Unit),
            any::<bool>().prop_map(Scalar::Bool),
            any::<u64>().prop_map(Scalar::U64),
            prop_oneof![any::<i64>(), Just(i64::MIN), Just(-1), Just(0)].prop_map(Scalar::I64),
            any::<i32>().prop_map(Scalar::I32),
            prop_oneof![
                any::<f64>(),
                Just(f64::NAN),
                Just(-0.0),
                Just(f64::INFINITY),
                Just(1e300)
            ]
            .prop_map(Scalar::F64),
            any::<f32>().prop_map(Scalar::F32),
            "\\PC{0,50}".prop_map(Scalar::Str),
            "[a-z\"\\\\\u{0}-\u{1f}\u{e9}\u{1F600}]{0,30}".prop_map(Scalar::Str),
            any::<char>().prop_map(Scalar::Char),
            proptest::collection::vec(any::<u8>(), 0..3).prop_map(Scalar::Seq),
        ]
    }

    proptest! {
        #[test]
        fn built_messages_equal_their_vectors(xs in proptest::collection::vec(scalar(), 0..7)) {
            let mut b = MsgBuilder::new();
            for x in &xs {
                b.push(x);
            }
            let m = b.finish();
            let values: Vec<Value> = xs.iter().map(|x| serde_json::to_value(x).unwrap()).collect();
            assert_same(&m, &values);
            let mut changed = m.clone();
            changed.push(Value::Null);
            let mut longer = values.clone();
            longer.push(Value::Null);
            assert_same(&changed, &longer);
            // Appended with push_value, as serde_json makes it.
            for x in &xs {
                let mut appended = m.clone();
                appended.push_value(x).unwrap();
                let mut longer = values.clone();
                longer.push(serde_json::to_value(x).unwrap());
                assert_same(&appended, &longer);
            }
            prop_assert_eq!(m.clone().without_tag(), Message::from_vec(values.get(1..).unwrap_or_default().to_vec()));
        }
    }
}
