//! Typed messages: any `Serialize` value as a message, in AEMP's shape.
//!
//! The top level goes through [`ElementSerializer`], a small serializer that
//! knows only the shapes a message can have (tuple, struct, enum variant,
//! sequence); each element is an ordinary JSON value
//! (`serde_json::to_value`). Decoding the same shapes back lives with
//! [`Message::decode`] in `message.rs`.

use crate::error::{Error, Result};
use crate::message::Message;
use crate::node::Node;
use crate::PortId;
use serde::ser::{self, Impossible, Serialize};
use serde_json::Value;

impl Message {
    /// Builds a message from any `Serialize` value, in AEMP's shape:
    ///
    /// - a tuple, tuple struct or sequence → its elements; a newtype struct
    ///   → a one-element message; a unit or unit struct → the empty message;
    /// - a struct with named fields → its field values in *declaration
    ///   order* (never through a map, which would sort the keys);
    /// - an enum variant → `["tag", fields...]`: a unit variant `["tag"]`,
    ///   a newtype variant `["tag", value]`, a tuple variant
    ///   `["tag", a, b]`, a struct variant `["tag", field values in
    ///   declaration order]`, the tag following serde's renaming (so
    ///   `#[serde(rename_all = "snake_case")]` gives Perl-style tags).
    ///
    /// Values inside the elements are ordinary JSON. A number, string, map
    /// or `Option` at the top level is an [`Error::Encode`]: it has no
    /// message shape. Fields skipped by `#[serde(skip_serializing_if)]`
    /// shift the later elements, so avoid them in message types.
    /// [`Message::decode`] reads every shape back.
    ///
    /// ```
    /// use aemp::{msg, Message};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// #[serde(rename_all = "snake_case")]
    /// enum Request {
    ///     Ping,
    ///     WriteFile { path: String, len: u64 },
    /// }
    ///
    /// let m = Message::from_value(&Request::WriteFile { path: "/tmp/x".into(), len: 3 }).unwrap();
    /// assert_eq!(m, msg!["write_file", "/tmp/x", 3]);
    /// assert_eq!(Message::from_value(&Request::Ping).unwrap(), msg!["ping"]);
    /// assert_eq!(m.decode::<Request>().unwrap(), Request::WriteFile { path: "/tmp/x".into(), len: 3 });
    /// ```
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Message> {
        value
            .serialize(ElementSerializer)
            .map_err(|e| Error::Encode(e.to_string()))
    }
}

/// # Sending typed values
impl Node {
    /// Sends any `Serialize` value as a message: [`Message::from_value`]
    /// then [`Node::snd`]. Fails only when the value has no message shape
    /// or cannot be JSON; nothing is sent then.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use serde::Serialize;
    ///
    /// #[derive(Serialize)]
    /// #[serde(rename_all = "snake_case")]
    /// enum Event { Started { pid: u32 } }
    ///
    /// let node = Node::new("snd-value-doc").unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let p = node.port_fn(move |m| tx.send(m).unwrap());
    /// node.snd_value(&p, &Event::Started { pid: 7 }).unwrap();
    /// assert_eq!(rx.recv().unwrap(), msg!["started", 7]);
    /// ```
    pub fn snd_value<T: Serialize + ?Sized>(&self, port: &PortId, value: &T) -> Result<()> {
        self.snd(port, Message::from_value(value)?);
        Ok(())
    }
}

type SerError = serde_json::Error;

fn no_shape(what: &str) -> SerError {
    ser::Error::custom(format!(
        "a message is built from a tuple, struct, enum variant or sequence, not {what}"
    ))
}

/// Serialises the top level of a value into message elements.
struct ElementSerializer;

/// Collects the elements of a compound value (after the tag, if any).
struct Elements(Vec<Value>);

impl Elements {
    fn new(tag: Option<&str>, len: usize) -> Elements {
        let mut v = Vec::with_capacity(len + usize::from(tag.is_some()));
        v.extend(tag.map(Value::from));
        Elements(v)
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        self.0.push(serde_json::to_value(value)?);
        Ok(())
    }

    fn done(self) -> Result<Message, SerError> {
        Ok(Message::from_vec(self.0))
    }
}

macro_rules! no_shape_fns {
    ($($f:ident($t:ty) $what:literal;)*) => {
        $(fn $f(self, _: $t) -> Result<Message, SerError> { Err(no_shape($what)) })*
    };
}

/// A tuple or struct variant: the tag, then the fields.
macro_rules! variant_fns {
    ($($f:ident)*) => {$(
        fn $f(
            self,
            _: &'static str,
            _: u32,
            variant: &'static str,
            len: usize,
        ) -> Result<Elements, SerError> {
            Ok(Elements::new(Some(variant), len))
        }
    )*};
}

impl ser::Serializer for ElementSerializer {
    type Ok = Message;
    type Error = SerError;
    type SerializeSeq = Elements;
    type SerializeTuple = Elements;
    type SerializeTupleStruct = Elements;
    type SerializeTupleVariant = Elements;
    type SerializeMap = Impossible<Message, SerError>;
    type SerializeStruct = Elements;
    type SerializeStructVariant = Elements;

    no_shape_fns! {
        serialize_bool(bool) "a boolean";
        serialize_i8(i8) "a number";
        serialize_i16(i16) "a number";
        serialize_i32(i32) "a number";
        serialize_i64(i64) "a number";
        serialize_i128(i128) "a number";
        serialize_u8(u8) "a number";
        serialize_u16(u16) "a number";
        serialize_u32(u32) "a number";
        serialize_u64(u64) "a number";
        serialize_u128(u128) "a number";
        serialize_f32(f32) "a number";
        serialize_f64(f64) "a number";
        serialize_char(char) "a character";
        serialize_str(&str) "a string";
        serialize_bytes(&[u8]) "a byte string";
    }

    fn serialize_none(self) -> Result<Message, SerError> {
        Err(no_shape("an Option"))
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<Message, SerError> {
        Err(no_shape("an Option"))
    }

    fn serialize_unit(self) -> Result<Message, SerError> {
        Ok(Message::new())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<Message, SerError> {
        Ok(Message::new())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Message, SerError> {
        Elements::new(Some(variant), 0).done()
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Message, SerError> {
        let mut e = Elements::new(None, 1);
        e.push(value)?;
        e.done()
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Message, SerError> {
        let mut e = Elements::new(Some(variant), 1);
        e.push(value)?;
        e.done()
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Elements, SerError> {
        Ok(Elements::new(None, len.unwrap_or(0)))
    }

    fn serialize_tuple(self, len: usize) -> Result<Elements, SerError> {
        Ok(Elements::new(None, len))
    }

    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Elements, SerError> {
        Ok(Elements::new(None, len))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, SerError> {
        Err(no_shape("a map (its keys have no order)"))
    }

    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Elements, SerError> {
        Ok(Elements::new(None, len))
    }

    variant_fns!(serialize_tuple_variant serialize_struct_variant);
}

/// The one body of every compound trait: push the element, or finish.
macro_rules! elements_impl {
    ($($tr:ident :: $f:ident ($($key:ident)?);)*) => {$(
        impl ser::$tr for Elements {
            type Ok = Message;
            type Error = SerError;
            fn $f<T: Serialize + ?Sized>(
                &mut self,
                $($key: &'static str,)?
                value: &T,
            ) -> Result<(), SerError> {
                $(let _ = $key;)?
                self.push(value)
            }
            fn end(self) -> Result<Message, SerError> {
                self.done()
            }
        }
    )*};
}

elements_impl! {
    SerializeSeq::serialize_element();
    SerializeTuple::serialize_element();
    SerializeTupleStruct::serialize_field();
    SerializeTupleVariant::serialize_field();
    SerializeStruct::serialize_field(key);
    SerializeStructVariant::serialize_field(key);
}
