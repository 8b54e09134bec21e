//! The selective-receive queue of a thread port.
//!
//! New arrivals wait in a plain FIFO *tail*; a message is moved into the
//! indexed part only when a selective receive has to look past it. The
//! indexed part keeps messages in arrival order by sequence number and
//! indexes them by tag, so that:
//! - `pop_front` (plain `get`) costs O(1) while nothing was skipped;
//! - `take_tag` finds the oldest message of a tag without looking at other
//!   tags' messages again (O(log n)); each message is examined once;
//! - a predicate search resumes after the last sequence number it looked
//!   at, so a waiting `get_cond` examines each message at most once.
//!
//! Every indexed message is older than every tail message.

use crate::message::Message;
use std::collections::{BTreeMap, HashMap, VecDeque};

#[derive(Default)]
pub(crate) struct TagQueue {
    next_seq: u64,
    indexed: BTreeMap<u64, Message>,
    /// Sequence numbers of indexed messages per string tag, ascending.
    by_tag: HashMap<String, VecDeque<u64>>,
    tail: VecDeque<Message>,
}

impl TagQueue {
    pub(crate) fn len(&self) -> usize {
        self.indexed.len() + self.tail.len()
    }

    /// Appends arrivals (moving them out of `incoming`).
    pub(crate) fn append(&mut self, incoming: &mut VecDeque<Message>) {
        self.tail.append(incoming);
    }

    pub(crate) fn pop_front(&mut self) -> Option<Message> {
        match self.indexed.pop_first() {
            Some((seq, msg)) => {
                self.unindex(seq, &msg);
                Some(msg)
            }
            None => self.tail.pop_front(),
        }
    }

    pub(crate) fn take_tag(&mut self, tag: &str) -> Option<Message> {
        if let Some(q) = self.by_tag.get_mut(tag) {
            let seq = q.pop_front().expect("tag queues are never empty");
            if q.is_empty() {
                self.by_tag.remove(tag);
            }
            return self.indexed.remove(&seq);
        }
        while let Some(msg) = self.tail.pop_front() {
            if msg.tag() == Some(tag) {
                return Some(msg);
            }
            self.index(msg);
        }
        None
    }

    /// The first message at or after sequence number `from` for which
    /// `pred` is true, removed; otherwise the number to resume from.
    pub(crate) fn take_first_match(
        &mut self,
        from: u64,
        pred: &mut dyn FnMut(&Message) -> bool,
    ) -> Result<Message, u64> {
        let found = self
            .indexed
            .range(from..)
            .find(|(_, m)| pred(m))
            .map(|(seq, _)| *seq);
        if let Some(seq) = found {
            let msg = self.indexed.remove(&seq).expect("found above");
            self.unindex(seq, &msg);
            return Ok(msg);
        }
        while let Some(msg) = self.tail.pop_front() {
            if pred(&msg) {
                return Ok(msg);
            }
            self.index(msg);
        }
        Err(self.next_seq)
    }

    pub(crate) fn clear(&mut self) {
        self.indexed.clear();
        self.by_tag.clear();
        self.tail.clear();
    }

    fn index(&mut self, msg: Message) {
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
        self.indexed.insert(seq, msg);
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

    fn queue(msgs: Vec<Message>) -> TagQueue {
        let mut q = TagQueue::default();
        q.append(&mut msgs.into());
        q
    }

    #[test]
    fn tags_and_order() {
        let mut msgs = Vec::new();
        for i in 0..5 {
            msgs.push(msg!["a", i]);
            msgs.push(msg!["b", i]);
        }
        msgs.push(msg![1, 2]);
        let mut q = queue(msgs);
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
        assert!(q.take_first_match(0, &mut |_| false).is_err());
        assert_eq!(q.pop_front().unwrap(), msg!["a", 2]);
    }

    #[test]
    fn each_message_examined_once_per_search() {
        let mut q = queue((0..100).map(|i| msg!["x", i]).collect());
        let mut looked = 0;
        let r = q.take_first_match(0, &mut |_| {
            looked += 1;
            false
        });
        let resume = r.unwrap_err();
        assert_eq!(looked, 100);
        q.append(&mut VecDeque::from([msg!["y"]]));
        looked = 0;
        let m = q
            .take_first_match(resume, &mut |m| {
                looked += 1;
                m.tag() == Some("y")
            })
            .unwrap();
        assert_eq!(m, msg!["y"]);
        assert_eq!(looked, 1, "only the new arrival is examined");
    }

    #[test]
    fn take_tag_skips_without_rescanning() {
        let mut q = queue((0..1000).map(|i| msg!["other", i]).collect());
        assert!(q.take_tag("x").is_none());
        q.append(&mut VecDeque::from([msg!["x", 1]]));
        assert_eq!(q.take_tag("x").unwrap(), msg!["x", 1]);
        assert!(q.tail.is_empty() && q.indexed.len() == 1000);
        assert_eq!(q.pop_front().unwrap(), msg!["other", 0]);
    }
}
