//! The merged database of a global node: every owner's shard, and the
//! merged view family → key → value that queries and monitors see.
//!
//! The same key may be set by several owners (acceptance §1.12 allows it).
//! The merged value is the last one set; when its owner deletes it, the
//! value of the remaining owner with the smallest node ID takes over, so
//! the key only disappears with its last owner.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

/// One family: key → value.
pub type Family = BTreeMap<String, Value>;

/// A whole database: family → key → value.
pub type Db = BTreeMap<String, Family>;

/// The changes of one family in the merged view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FamilyChange {
    /// Keys added or given a new value, with that value.
    pub set: Family,
    /// Keys that disappeared.
    pub del: BTreeSet<String>,
}

/// Changes of the merged view, accumulated over one or more operations: a
/// key appears at most once, as its last state (set or deleted).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes(pub BTreeMap<String, FamilyChange>);

impl Changes {
    /// Records that `key` now has `value`.
    pub fn set(&mut self, family: &str, key: &str, value: Value) {
        let fc = self.0.entry(family.to_owned()).or_default();
        fc.del.remove(key);
        fc.set.insert(key.to_owned(), value);
    }

    /// Records that `key` is gone.
    pub fn del(&mut self, family: &str, key: &str) {
        let fc = self.0.entry(family.to_owned()).or_default();
        fc.set.remove(key);
        fc.del.insert(key.to_owned());
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Who holds a key: the owner whose value is shown, and all owners.
#[derive(Debug, Clone)]
struct Entry {
    winner: String,
    owners: BTreeSet<String>,
}

/// Shards by owner plus the merged view. See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct Store {
    shards: HashMap<String, Db>,
    merged: BTreeMap<String, BTreeMap<String, Entry>>,
}

fn lookup<'a>(shards: &'a HashMap<String, Db>, owner: &str, f: &str, k: &str) -> Option<&'a Value> {
    shards.get(owner)?.get(f)?.get(k)
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// `owner` sets `family`/`key` to `value`; it becomes the merged value.
    pub fn set(&mut self, owner: &str, family: &str, key: &str, value: Value, ch: &mut Changes) {
        let old = self.get(family, key).cloned();
        let shard = self.shards.entry(owner.to_owned()).or_default();
        shard
            .entry(family.to_owned())
            .or_default()
            .insert(key.to_owned(), value.clone());
        let fam = self.merged.entry(family.to_owned()).or_default();
        let entry = fam.entry(key.to_owned()).or_insert_with(|| Entry {
            winner: owner.to_owned(),
            owners: BTreeSet::new(),
        });
        entry.winner = owner.to_owned();
        entry.owners.insert(owner.to_owned());
        if old.as_ref() != Some(&value) {
            ch.set(family, key, value);
        }
    }

    /// `owner` deletes its `family`/`key`; another owner's value may remain.
    pub fn del(&mut self, owner: &str, family: &str, key: &str, ch: &mut Changes) {
        let Some(db) = self.shards.get_mut(owner) else {
            return;
        };
        let Some(fam) = db.get_mut(family) else {
            return;
        };
        let Some(old_value) = fam.remove(key) else {
            return;
        };
        if fam.is_empty() {
            db.remove(family);
        }
        if db.is_empty() {
            self.shards.remove(owner);
        }
        let Some(mfam) = self.merged.get_mut(family) else {
            return;
        };
        let Some(entry) = mfam.get_mut(key) else {
            return;
        };
        entry.owners.remove(owner);
        if entry.winner != owner {
            return;
        }
        match entry.owners.first() {
            None => {
                mfam.remove(key);
                if mfam.is_empty() {
                    self.merged.remove(family);
                }
                ch.del(family, key);
            }
            Some(next) => {
                entry.winner = next.clone();
                let value = lookup(&self.shards, next, family, key)
                    .cloned()
                    .unwrap_or(Value::Null);
                if value != old_value {
                    ch.set(family, key, value);
                }
            }
        }
    }

    /// Replaces `owner`'s whole shard with `db` (a `g_slave` or `g_set`),
    /// recording only the differences.
    pub fn replace_owner(&mut self, owner: &str, db: Db, ch: &mut Changes) {
        let mut gone = Vec::new();
        if let Some(old) = self.shards.get(owner) {
            for (f, fam) in old {
                for k in fam.keys() {
                    if !db.get(f).is_some_and(|n| n.contains_key(k)) {
                        gone.push((f.clone(), k.clone()));
                    }
                }
            }
        }
        for (f, k) in gone {
            self.del(owner, &f, &k, ch);
        }
        for (f, fam) in db {
            for (k, v) in fam {
                if lookup(&self.shards, owner, &f, &k) != Some(&v) {
                    self.set(owner, &f, &k, v, ch);
                }
            }
        }
    }

    /// Removes everything `owner` set (its node went down).
    pub fn remove_owner(&mut self, owner: &str, ch: &mut Changes) {
        self.replace_owner(owner, Db::new(), ch);
    }

    /// The merged value of `family`/`key`.
    pub fn get(&self, family: &str, key: &str) -> Option<&Value> {
        let entry = self.merged.get(family)?.get(key)?;
        lookup(&self.shards, &entry.winner, family, key)
    }

    /// The owner whose value of `family`/`key` is shown.
    pub fn owner(&self, family: &str, key: &str) -> Option<&str> {
        Some(&self.merged.get(family)?.get(key)?.winner)
    }

    /// A copy of one merged family (empty if unknown).
    pub fn family(&self, family: &str) -> Family {
        let Some(fam) = self.merged.get(family) else {
            return Family::new();
        };
        fam.iter()
            .filter_map(|(k, e)| {
                let v = lookup(&self.shards, &e.winner, family, k)?;
                Some((k.clone(), v.clone()))
            })
            .collect()
    }

    /// The keys of one merged family, sorted.
    pub fn keys(&self, family: &str) -> Vec<String> {
        self.merged
            .get(family)
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The whole merged view.
    pub fn dump(&self) -> Db {
        self.merged
            .keys()
            .map(|f| (f.clone(), self.family(f)))
            .collect()
    }

    /// What `owner` set, if anything.
    pub fn shard(&self, owner: &str) -> Option<&Db> {
        self.shards.get(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(f: &str, k: &str, v: Value) -> Changes {
        let mut c = Changes::default();
        c.set(f, k, v);
        c
    }

    #[test]
    fn set_del_with_two_owners() {
        let mut s = Store::new();
        let mut ch = Changes::default();
        s.set("a", "f", "k", json!(1), &mut ch);
        assert_eq!(ch, one("f", "k", json!(1)));
        let mut ch = Changes::default();
        s.set("a", "f", "k", json!(1), &mut ch);
        assert!(ch.is_empty(), "an equal value is no change");
        s.set("b", "f", "k", json!(2), &mut ch);
        assert_eq!(ch, one("f", "k", json!(2)));
        assert_eq!(s.owner("f", "k"), Some("b"));
        let mut ch = Changes::default();
        s.del("x", "f", "k", &mut ch);
        assert!(ch.is_empty(), "a non-owner cannot delete");
        s.del("b", "f", "k", &mut ch);
        assert_eq!(ch, one("f", "k", json!(1)), "a's value takes over");
        let mut ch = Changes::default();
        s.del("a", "f", "k", &mut ch);
        assert_eq!(ch.0["f"].del.iter().collect::<Vec<_>>(), ["k"]);
        assert!(s.dump().is_empty());
        assert!(s.shard("a").is_none());
    }

    #[test]
    fn replace_and_remove_owner_record_differences() {
        let mut s = Store::new();
        let mut ch = Changes::default();
        let db: Db = serde_json::from_value(json!({"f": {"a": 1, "b": 2}, "g": {"x": 0}})).unwrap();
        s.replace_owner("n", db, &mut ch);
        let mut ch = Changes::default();
        let db: Db = serde_json::from_value(json!({"f": {"a": 1, "b": 3, "c": 4}})).unwrap();
        s.replace_owner("n", db, &mut ch);
        let want: Changes = {
            let mut c = Changes::default();
            c.set("f", "b", json!(3));
            c.set("f", "c", json!(4));
            c.del("g", "x");
            c
        };
        assert_eq!(ch, want);
        assert_eq!(s.keys("f"), ["a", "b", "c"]);
        let mut ch = Changes::default();
        s.remove_owner("n", &mut ch);
        assert_eq!(ch.0["f"].del.len(), 3);
        assert!(s.family("f").is_empty());
    }
}
