//! The port table of a node: port name → cell.
//!
//! Sharded so that senders, port creation and the dispatcher's removals
//! rarely meet on one lock; each entry keeps its name's hash, so lookups
//! compare hashes before names and growing the table never re-reads names.
//!
//! Each thread also remembers the last two cells it delivered to, so that
//! a stream of messages to one port, or an exchange between two (a
//! dispatcher running two callback ports that answer each other), skips
//! the shards altogether.

use crate::port::PortCell;
use crate::PortId;
use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use parking_lot::RwLock;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Tells tables apart in the per-thread memo (an address could be reused).
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(0);

/// A remembered delivery: the table's serial, a copy of the cell's ID
/// (compared here, not in the cell, whose cache line the dispatcher
/// writes), the cell.
type Memo = Option<(u64, PortId, Arc<PortCell>)>;

thread_local! {
    /// The last two cells this thread delivered to through a table, the
    /// latest first.
    static LAST: RefCell<[Memo; 2]> = const { RefCell::new([None, None]) };
}

/// Drops this thread's memo of its last deliveries (a parked thread must
/// not keep a dead port's cell).
pub(crate) fn forget_last_delivery() {
    let old = LAST.with(|l| std::mem::take(&mut *l.borrow_mut()));
    drop(old);
}

const SHARDS: usize = 16;

struct Entry {
    hash: u64,
    cell: Arc<PortCell>,
}

pub(crate) struct PortTable {
    serial: u64,
    hasher: ahash::RandomState,
    /// Padded: two threads working on different shards never share a line.
    shards: [CachePadded<RwLock<HashTable<Entry>>>; SHARDS],
}

impl PortTable {
    pub(crate) fn new() -> PortTable {
        PortTable {
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            hasher: ahash::RandomState::new(),
            shards: std::array::from_fn(|_| CachePadded::new(RwLock::new(HashTable::new()))),
        }
    }

    /// The hash a port named `name` is filed under.
    pub(crate) fn hash_of(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    fn shard(&self, hash: u64) -> &RwLock<HashTable<Entry>> {
        &self.shards[(hash >> 59) as usize % SHARDS]
    }

    fn locate(&self, name: &str) -> (u64, &RwLock<HashTable<Entry>>) {
        let hash = self.hash_of(name);
        (hash, self.shard(hash))
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<PortCell>> {
        self.with(name, Arc::clone)
    }

    /// Runs `f` on the cell while its shard is read-locked (no clone).
    pub(crate) fn with<R>(&self, name: &str, f: impl FnOnce(&Arc<PortCell>) -> R) -> Option<R> {
        let (hash, shard) = self.locate(name);
        let shard = shard.read();
        shard
            .find(hash, |e| e.hash == hash && e.cell.id.name() == name)
            .map(|e| f(&e.cell))
    }

    /// Offers `item` to a cell this thread [remembered](Self::remember)
    /// if that cell is in this table and `wanted` says it is the one; the
    /// item comes back when none is, or when `offer` gives it back (a dead
    /// cell: its name may have a new owner, which only the table knows).
    pub(crate) fn offer_to_last<T>(
        &self,
        wanted: impl Fn(&PortId) -> bool,
        item: T,
        offer: impl FnOnce(&Arc<PortCell>, T) -> Result<(), T>,
    ) -> Result<(), T> {
        // (`try_with`: a send from a destructor while the thread exits finds
        // the memo gone and takes the table.)
        let mut item = Some(item);
        let offered = LAST.try_with(|last| {
            let last = last.try_borrow().ok()?;
            let (_, _, cell) = last
                .iter()
                .flatten()
                .find(|(serial, id, _)| *serial == self.serial && wanted(id))?;
            Some(offer(cell, item.take().expect("offered once")))
        });
        match (offered, item) {
            (Ok(Some(result)), _) => result,
            (_, Some(item)) => Err(item),
            (_, None) => unreachable!("an offered item comes back in the result"),
        }
    }

    /// Makes `cell` (found in this table) this thread's latest cell; the
    /// one before it stays remembered too.
    pub(crate) fn remember(&self, cell: Arc<PortCell>) {
        let old = LAST.try_with(|last| match last.try_borrow_mut() {
            Ok(mut last) => {
                let latest = Some((self.serial, cell.id.clone(), cell));
                let previous = std::mem::replace(&mut last[0], latest);
                std::mem::replace(&mut last[1], previous)
            }
            Err(_) => None,
        });
        // Dropped outside the borrow: a dead port's last handle may run
        // user code (its callbacks' captures) as it goes.
        drop(old);
    }

    /// Adds the cell unless its name is taken; `false` if it was.
    pub(crate) fn insert(&self, cell: &Arc<PortCell>) -> bool {
        let (name, hash) = (cell.id.name(), cell.hash);
        let mut shard = self.shard(hash).write();
        if shard
            .find(hash, |e| e.hash == hash && e.cell.id.name() == name)
            .is_some()
        {
            return false;
        }
        shard.insert_unique(
            hash,
            Entry {
                hash,
                cell: cell.clone(),
            },
            |e| e.hash,
        );
        true
    }

    /// Removes this very cell (not another one that took its name).
    pub(crate) fn remove(&self, cell: &Arc<PortCell>) {
        let hash = cell.hash;
        let mut shard = self.shard(hash).write();
        if let Ok(entry) = shard.find_entry(hash, |e| Arc::ptr_eq(&e.cell, cell)) {
            entry.remove();
        }
    }

    /// Calls `f` for every cell: a snapshot of each shard, so `f` may take
    /// any lock.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<PortCell>)) {
        for shard in &self.shards {
            let cells: Vec<Arc<PortCell>> = shard.read().iter().map(|e| e.cell.clone()).collect();
            cells.iter().for_each(&mut f);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}
