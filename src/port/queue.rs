//! The selective-receive queue of a thread port.
//!
//! Messages are kept in arrival order, keyed by a sequence number, and
//! indexed by tag, so that:
//! - `take_tag` finds the oldest message of a tag without looking at other
//!   tags' messages (O(log n));
//! - `pop_front` takes the oldest message (O(log n));
//! - a predicate search can resume after the last sequence number it looked
//!   at, so a waiting `get_cond` examines each message at most once.

use crate::message::Message;
use std::collections::{BTreeMap, HashMap, VecDeque};

#[derive(Default)]
pub(crate) struct TagQueue {
    next_seq: u64,
    messages: BTreeMap<u64, Message>,
    /// Sequence numbers of queued messages per string tag, ascending.
    by_tag: HashMap<String, VecDeque<u64>>,
}

impl TagQueue {
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    pub(crate) fn push(&mut self, msg: Message) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(tag) = msg.tag() {
            match self.by_tag.get_mut(tag) {
                Some(q) => q.push_back(seq),
                None => {
                    self.by_tag.insert(tag.to_owned(), VecDeque::from([seq]));
                }
            }
        }
        self.messages.insert(seq, msg);
    }

    pub(crate) fn pop_front(&mut self) -> Option<Message> {
        let (seq, msg) = self.messages.pop_first()?;
        self.unindex(seq, &msg);
        Some(msg)
    }

    pub(crate) fn take_tag(&mut self, tag: &str) -> Option<Message> {
        let q = self.by_tag.get_mut(tag)?;
        let seq = q.pop_front()?;
        if q.is_empty() {
            self.by_tag.remove(tag);
        }
        self.messages.remove(&seq)
    }

    /// The first message at or after `from` for which `pred` is true,
    /// removed. Returns the sequence number to resume from otherwise.
    pub(crate) fn take_first_match(
        &mut self,
        from: u64,
        pred: &mut dyn FnMut(&Message) -> bool,
    ) -> Result<Message, u64> {
        let found = self
            .messages
            .range(from..)
            .find(|(_, m)| pred(m))
            .map(|(seq, _)| *seq);
        match found {
            Some(seq) => {
                let msg = self.messages.remove(&seq).expect("found above");
                self.unindex(seq, &msg);
                Ok(msg)
            }
            None => Err(self.next_seq),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.messages.clear();
        self.by_tag.clear();
    }

    fn unindex(&mut self, seq: u64, msg: &Message) {
        let Some(tag) = msg.tag() else { return };
        let Some(q) = self.by_tag.get_mut(tag) else {
            return;
        };
        if q.front() == Some(&seq) {
            q.pop_front();
        } else if let Ok(i) = q.binary_search(&seq) {
            q.remove(i);
        }
        if q.is_empty() {
            self.by_tag.remove(tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg;

    #[test]
    fn tags_and_order() {
        let mut q = TagQueue::default();
        for i in 0..5 {
            q.push(msg!["a", i]);
            q.push(msg!["b", i]);
        }
        q.push(msg![1, 2]);
        assert_eq!(q.take_tag("b").unwrap(), msg!["b", 0]);
        assert_eq!(q.pop_front().unwrap(), msg!["a", 0]);
        assert_eq!(q.pop_front().unwrap(), msg!["a", 1]);
        let m = q
            .take_first_match(0, &mut |m| {
                m.get(1) == Some(&3.into()) && m.tag() == Some("b")
            })
            .unwrap();
        assert_eq!(m, msg!["b", 3]);
        assert_eq!(q.take_tag("b").unwrap(), msg!["b", 1]);
        assert_eq!(q.take_tag("b").unwrap(), msg!["b", 2]);
        assert_eq!(q.take_tag("b").unwrap(), msg!["b", 4]);
        assert!(q.take_tag("b").is_none());
        assert!(!q.by_tag.contains_key("b"));
        assert_eq!(q.len(), 4);
        assert_eq!(q.take_first_match(0, &mut |_| false), Err(11));
    }
}
