//! Node IDs, port IDs, and the generator of port names.
//!
//! A port ID is `nodeid#name`; a bare node ID (or `nodeid#`) names that
//! node's *node port*. Names are generated: unique for the node's life
//! (a counter) and unguessable (a keyed hash of the counter).

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The ID of a node (a process taking part): any non-empty string without
/// `#`, `;` or `,`.
///
/// ```
/// use aemp::NodeId;
/// let n: NodeId = "anon/x3Kq".parse().unwrap();
/// assert_eq!(n.as_str(), "anon/x3Kq");
/// assert!(NodeId::new("a#b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// Validates and wraps a node ID.
    pub fn new(id: impl AsRef<str>) -> Result<NodeId> {
        let id = id.as_ref();
        check_node_id(id)?;
        Ok(NodeId(id.into()))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps text already known to be a node ID (a port ID's node part).
    pub(crate) fn from_trusted(id: &str) -> NodeId {
        NodeId(id.into())
    }

    /// The node port of this node (the port with the empty name).
    ///
    /// ```
    /// let node = aemp::NodeId::new("db/1").unwrap();
    /// let np = node.node_port();
    /// assert!(np.is_node_port());
    /// assert_eq!(np.as_str(), "db/1");
    /// ```
    pub fn node_port(&self) -> PortId {
        PortId::node_port(self)
    }
}

fn check_node_id(id: &str) -> Result<()> {
    let problem = if id.is_empty() {
        "a node ID must not be empty"
    } else if id.contains('#') {
        "a node ID must not contain '#'"
    } else if id.contains(';') {
        "a node ID must not contain ';'"
    } else if id.contains(',') {
        "a node ID must not contain ','"
    } else {
        return Ok(());
    };
    Err(Error::InvalidNodeId {
        id: id.to_string(),
        problem,
    })
}

impl FromStr for NodeId {
    type Err = Error;
    fn from_str(s: &str) -> Result<NodeId> {
        NodeId::new(s)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({:?})", &*self.0)
    }
}

impl AsRef<str> for NodeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        NodeId::new(&*s).map_err(serde::de::Error::custom)
    }
}

/// The ID of a port: `nodeid#name`.
///
/// Cheap to clone (shared text). A bare node ID, or `nodeid#`, names the
/// node port, which displays as the bare node ID.
///
/// ```
/// use aemp::PortId;
/// let p: PortId = "n1#a7Gx".parse().unwrap();
/// assert_eq!((p.node(), p.name()), ("n1", "a7Gx"));
/// let np: PortId = "n1".parse().unwrap();
/// assert!(np.is_node_port());
/// assert!("#x".parse::<PortId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId {
    /// `node#name`, or the bare node ID for a node port.
    text: Arc<str>,
    /// Length of the node part.
    split: usize,
}

impl PortId {
    /// Parses `nodeid#name`, `nodeid#` or a bare node ID.
    ///
    /// ```
    /// use aemp::PortId;
    /// let p = PortId::parse("db/1#worker7").unwrap();
    /// assert_eq!((p.node(), p.name(), p.is_node_port()), ("db/1", "worker7", false));
    /// assert!(PortId::parse("db/1").unwrap().is_node_port()); // a bare node ID
    /// assert!(PortId::parse("#x").is_err());
    /// ```
    pub fn parse(id: &str) -> Result<PortId> {
        // The common case, a valid ID, in one look for the characters that
        // matter (a node part free of ';' and ',', then at most one '#');
        // `parse_checked` names what is wrong with any other.
        match id.bytes().position(|b| matches!(b, b'#' | b';' | b',')) {
            None if !id.is_empty() => Ok(Self::from_parts(id, "")),
            Some(at) if at > 0 && id.as_bytes()[at] == b'#' && !id[at + 1..].contains('#') => {
                Ok(Self::from_parts(&id[..at], &id[at + 1..]))
            }
            _ => Self::parse_checked(id),
        }
    }

    /// [`parse`](Self::parse), each rule checked on its own (the error
    /// names the broken one).
    fn parse_checked(id: &str) -> Result<PortId> {
        let (node, name) = match id.split_once('#') {
            Some((n, p)) => (n, p),
            None => (id, ""),
        };
        check_node_id(node).map_err(|e| match e {
            Error::InvalidNodeId { problem, .. } => Error::InvalidPortId {
                id: id.to_string(),
                problem: match problem {
                    "a node ID must not be empty" => "the node part is empty",
                    _ => "the node part must not contain ';' or ','",
                },
            },
            other => other,
        })?;
        if name.contains('#') {
            return Err(Error::InvalidPortId {
                id: id.to_string(),
                problem: "a port name must not contain '#'",
            });
        }
        Ok(Self::from_parts(node, name))
    }

    /// The port `name` on `node`.
    ///
    /// ```
    /// use aemp::{NodeId, PortId};
    /// let node = NodeId::new("db/1").unwrap();
    /// let p = PortId::new(&node, "jobs").unwrap();
    /// assert_eq!(p.as_str(), "db/1#jobs");
    /// assert_eq!(p.node_id(), node);
    /// ```
    pub fn new(node: &NodeId, name: &str) -> Result<PortId> {
        if name.contains('#') {
            return Err(Error::InvalidPortId {
                id: format!("{node}#{name}"),
                problem: "a port name must not contain '#'",
            });
        }
        Ok(Self::from_parts(node.as_str(), name))
    }

    /// The node port of `node`.
    pub fn node_port(node: &NodeId) -> PortId {
        Self::from_parts(node.as_str(), "")
    }

    pub(crate) fn from_parts(node: &str, name: &str) -> PortId {
        // One allocation: assemble on the stack when it fits.
        let len = node.len() + 1 + name.len();
        let text: Arc<str> = if name.is_empty() {
            node.into()
        } else if len <= 128 {
            let mut buf = [0u8; 128];
            buf[..node.len()].copy_from_slice(node.as_bytes());
            buf[node.len()] = b'#';
            buf[node.len() + 1..len].copy_from_slice(name.as_bytes());
            std::str::from_utf8(&buf[..len])
                .expect("joined from two strs and '#'")
                .into()
        } else {
            format!("{node}#{name}").into()
        };
        PortId {
            text,
            split: node.len(),
        }
    }

    /// The node part.
    pub fn node(&self) -> &str {
        &self.text[..self.split]
    }

    /// The node part as a [`NodeId`].
    pub fn node_id(&self) -> NodeId {
        NodeId(self.node().into())
    }

    /// The name part (empty for a node port).
    pub fn name(&self) -> &str {
        self.text.get(self.split + 1..).unwrap_or("")
    }

    /// True for a node port (empty name).
    pub fn is_node_port(&self) -> bool {
        self.split == self.text.len()
    }

    /// The full ID as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for PortId {
    type Err = Error;
    fn from_str(s: &str) -> Result<PortId> {
        PortId::parse(s)
    }
}

impl TryFrom<&serde_json::Value> for PortId {
    type Error = Error;
    fn try_from(v: &serde_json::Value) -> Result<PortId> {
        match v.as_str() {
            Some(s) => PortId::parse(s),
            None => Err(Error::InvalidPortId {
                id: v.to_string(),
                problem: "a port ID must be a string",
            }),
        }
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortId({:?})", &*self.text)
    }
}

impl AsRef<str> for PortId {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl Serialize for PortId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for PortId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        PortId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl From<&PortId> for serde_json::Value {
    fn from(p: &PortId) -> Self {
        serde_json::Value::from(p.as_str())
    }
}

/// Generates port names: a counter (never repeats) followed by a keyed hash
/// of it (cannot be guessed from other names).
pub(crate) struct NameGen {
    counter: AtomicU64,
    key: RandomState,
    /// Spawned-port names carry an upper-case marker so they never collide
    /// with names of local ports.
    spawn_prefix: String,
}

const ALPHABET: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

impl NameGen {
    pub(crate) fn new() -> NameGen {
        let key = RandomState::new();
        let mut spawn_prefix = String::new();
        push_base62(&mut spawn_prefix, key.hash_one(0xdead_beef_u64), 9);
        spawn_prefix.push('S');
        NameGen {
            counter: AtomicU64::new(0),
            key,
            spawn_prefix,
        }
    }

    /// A fresh local port name: base-36 counter, then 10 hash characters.
    pub(crate) fn next(&self) -> Name {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut name = Name::default();
        name.push_base36(n);
        name.push_base62(self.key.hash_one(n), 10);
        name
    }

    /// A fresh name for a port spawned on another (or this) node.
    pub(crate) fn next_spawn(&self) -> String {
        let mut s = self.spawn_prefix.clone();
        s.push_str(self.next().as_str());
        s
    }

    /// Random alphanumerics, e.g. for anonymous node IDs.
    pub(crate) fn random_text(len: usize) -> String {
        let key = RandomState::new();
        let mut s = String::with_capacity(len);
        let mut i = 0u64;
        while s.len() < len {
            let digits = (len - s.len()).min(10);
            push_base62(&mut s, key.hash_one(i), digits);
            i += 1;
        }
        s
    }
}

/// A generated port name, on the stack.
#[derive(Default)]
pub(crate) struct Name {
    bytes: [u8; 24],
    len: usize,
}

impl Name {
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("ascii alphabet")
    }

    fn push_base36(&mut self, mut n: u64) {
        let mut digits = [0u8; 13];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = ALPHABET[(n % 36) as usize];
            n /= 36;
            if n == 0 {
                break;
            }
        }
        let d = &digits[i..];
        self.bytes[self.len..self.len + d.len()].copy_from_slice(d);
        self.len += d.len();
    }

    fn push_base62(&mut self, mut n: u64, digits: usize) {
        for _ in 0..digits {
            self.bytes[self.len] = ALPHABET[(n % 62) as usize];
            self.len += 1;
            n /= 62;
        }
    }
}

fn push_base62(s: &mut String, mut n: u64, digits: usize) {
    for _ in 0..digits {
        s.push(ALPHABET[(n % 62) as usize] as char);
        n /= 62;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_port_forms_are_equal() {
        let a = PortId::parse("n").unwrap();
        let b = PortId::parse("n#").unwrap();
        assert_eq!(a, b);
        assert!(a.is_node_port());
        assert_eq!(a.to_string(), "n");
    }

    #[test]
    fn names_are_distinct_and_spawn_names_differ() {
        let g = NameGen::new();
        let a = g.next().as_str().to_string();
        let b = g.next().as_str().to_string();
        assert_ne!(a, b);
        // Spawn names are longer than any local name of a realistic counter.
        assert!(g.next_spawn().len() > a.len() + 9);
    }

    #[test]
    fn parse_examples() {
        for (text, parts) in [
            ("n#p", Some(("n", "p"))),
            ("db/1#w;7,x", Some(("db/1", "w;7,x"))),
            ("n", Some(("n", ""))),
            ("n#", Some(("n", ""))),
            ("", None),
            ("#p", None),
            ("n#p#q", None),
            ("n;1#p", None),
            ("n,1", None),
            ("é#ü", Some(("é", "ü"))),
        ] {
            let parsed = PortId::parse(text).ok();
            assert_eq!(
                parsed.as_ref().map(|p| (p.node(), p.name())),
                parts,
                "{text:?}"
            );
        }
    }

    proptest::proptest! {
        /// The quick look for a valid ID agrees with the rule-by-rule
        /// checks, in what it accepts and what it makes.
        #[test]
        fn parse_agrees_with_the_checks(id in "[a#;,é]{0,6}") {
            let quick = PortId::parse(&id);
            let checked = PortId::parse_checked(&id);
            proptest::prop_assert_eq!(quick.as_ref().ok(), checked.as_ref().ok(), "{:?}", id);
            if let (Err(a), Err(b)) = (quick, checked) {
                proptest::prop_assert_eq!(a.to_string(), b.to_string());
            }
        }
    }
}
