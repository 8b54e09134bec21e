//! The callbacks of a port: a default one and one per tag.

use crate::message::Message;
use std::collections::HashMap;

/// A message callback.
pub(crate) type Callback = Box<dyn FnMut(Message) + Send>;

/// What happens to a message no tag callback takes.
pub(crate) enum DefaultHandler {
    /// `port()` without a callback: the message kills the port.
    KillOnMessage,
    /// A spawned port: unmatched messages are ignored.
    Ignore,
    Callback(Callback),
    /// A thread is attached: the message goes to its queue.
    Thread,
    /// The node port's built-in request handler.
    NodePort,
    /// The port is dead.
    Dead,
}

pub(crate) struct Handlers {
    pub(crate) default: DefaultHandler,
    pub(crate) tags: HashMap<String, Callback>,
    /// A handler was ever installed (a spawned port exists only then).
    pub(crate) touched: bool,
}

/// A change requested by `rcv` and friends, applied in inbox order.
pub(crate) enum HandlerChange {
    Default(Callback),
    Tag(String, Callback),
    RemoveTag(String),
    AttachThread,
}

impl Handlers {
    pub(crate) fn new(default: DefaultHandler) -> Handlers {
        Handlers {
            default,
            tags: HashMap::new(),
            touched: false,
        }
    }

    pub(crate) fn apply(&mut self, change: HandlerChange) {
        if matches!(self.default, DefaultHandler::Dead) {
            return;
        }
        self.touched = true;
        match change {
            HandlerChange::Default(cb) => {
                // A thread, once attached, keeps the default.
                if !matches!(self.default, DefaultHandler::Thread) {
                    self.default = DefaultHandler::Callback(cb);
                }
            }
            HandlerChange::Tag(tag, cb) => {
                self.tags.insert(tag, cb);
            }
            HandlerChange::RemoveTag(tag) => {
                self.tags.remove(&tag);
            }
            HandlerChange::AttachThread => self.default = DefaultHandler::Thread,
        }
    }

    /// Every message goes to the attached thread.
    pub(crate) fn is_thread_only(&self) -> bool {
        matches!(self.default, DefaultHandler::Thread) && self.tags.is_empty()
    }

    /// Drops every callback (they may own resources).
    pub(crate) fn clear(&mut self) {
        self.default = DefaultHandler::Dead;
        self.tags.clear();
    }
}
