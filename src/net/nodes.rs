//! `mon_nodes`: callbacks told when nodes come up and go down.
//!
//! Events are queued as dispatcher tasks at the moment the link changes
//! (with the remote locked), so per node they strictly alternate.

use super::Net;
use crate::id::NodeId;
use crate::message::Reason;
use crate::monitor::MonGuard;
use crate::node::Node;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

type NodeCallback = Box<dyn FnMut(&NodeId, bool, &Reason) + Send>;

struct Entry {
    /// Set when the guard drops: queued events are then skipped.
    cancelled: AtomicBool,
    f: Mutex<NodeCallback>,
}

#[derive(Default)]
pub(crate) struct NodeMonitors {
    next: AtomicU64,
    list: Mutex<Vec<(u64, Arc<Entry>)>>,
}

impl NodeMonitors {
    pub(crate) fn add(&self, net: &Arc<Net>, f: NodeCallback) -> MonGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            cancelled: AtomicBool::new(false),
            f: Mutex::new(f),
        });
        self.list.lock().push((id, entry.clone()));
        let net = Arc::downgrade(net);
        MonGuard::on_drop(move || {
            entry.cancelled.store(true, Ordering::Release);
            if let Some(net) = net.upgrade() {
                let removed = {
                    let mut list = net.nodes.list.lock();
                    list.iter()
                        .position(|(i, _)| *i == id)
                        .map(|i| list.remove(i))
                };
                drop(removed);
            }
        })
    }

    /// Queues the event for every callback registered now.
    pub(crate) fn notify(&self, node: &Node, id: NodeId, up: bool, reason: Reason) {
        let callbacks: Vec<_> = self.list.lock().iter().map(|(_, f)| f.clone()).collect();
        if callbacks.is_empty() {
            return;
        }
        node.task(move || {
            for e in callbacks {
                if e.cancelled.load(Ordering::Acquire) {
                    continue;
                }
                let mut f = e.f.lock();
                if let Err(text) = crate::context::catch(|| f(&id, up, &reason)) {
                    log::error!("a mon_nodes callback panicked: {text}");
                }
            }
        });
    }
}
