//! `db_mon` subscriptions of one node: per family, the subscribers and a
//! cache of the family as the master last reported it, turned into deltas.
//!
//! The master sends the whole family once (`g_chg1`) and then changes
//! (`g_chg2`). The first `g_chg1` is every subscriber's first call (all
//! keys in `add`, made even for an empty family). A later `g_chg1` comes
//! from a new master and is diffed against the cache, so subscribers see
//! only what really differs. Deltas are exact: no call without a change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::events::{DbMonEvent, MonId};
use super::store::Family;

#[derive(Debug)]
struct Subscribed {
    /// The position of this family's `g_mon1` among pending requests.
    seq: u64,
    subs: BTreeSet<MonId>,
    /// `None` until the first `g_chg1`.
    cache: Option<Arc<Family>>,
}

/// All `db_mon` subscriptions of a node. See the [module docs](self).
#[derive(Debug, Default)]
pub struct Subscriptions {
    families: BTreeMap<String, Subscribed>,
    family_of: HashMap<MonId, String>,
}

/// What a new subscription needs.
#[derive(Debug)]
pub enum Subscribe {
    /// The family is new: send `g_mon1` (and remember it as request `seq`
    /// via [`Subscriptions::add_family`]).
    NewFamily,
    /// Already subscribed; the first call, if the contents are known.
    Joined(Option<DbMonEvent>),
}

impl Subscriptions {
    /// Adds subscription `mon` to `family`.
    pub fn subscribe(&mut self, family: &str, mon: MonId) -> Subscribe {
        let Some(s) = self.families.get_mut(family) else {
            return Subscribe::NewFamily;
        };
        s.subs.insert(mon);
        self.family_of.insert(mon, family.to_owned());
        Subscribe::Joined(s.cache.as_ref().map(|cache| DbMonEvent {
            family: family.to_owned(),
            monitors: vec![mon],
            fam: cache.clone(),
            add: cache.keys().cloned().collect(),
            chg: Vec::new(),
            del: Vec::new(),
        }))
    }

    /// Registers a new family with its first subscriber `mon`, whose
    /// `g_mon1` is pending request `seq`.
    pub fn add_family(&mut self, family: &str, mon: MonId, seq: u64) {
        let subs = BTreeSet::from([mon]);
        self.families.insert(
            family.to_owned(),
            Subscribed {
                seq,
                subs,
                cache: None,
            },
        );
        self.family_of.insert(mon, family.to_owned());
    }

    /// Ends subscription `mon`. If it was the family's last, the family
    /// and its cache are dropped and `(family, seq)` is returned: send
    /// `g_mon0` and forget request `seq`.
    pub fn unsubscribe(&mut self, mon: MonId) -> Option<(String, u64)> {
        let family = self.family_of.remove(&mon)?;
        let s = self.families.get_mut(&family)?;
        s.subs.remove(&mon);
        if !s.subs.is_empty() {
            return None;
        }
        let seq = s.seq;
        self.families.remove(&family);
        Some((family, seq))
    }

    /// The master's whole family (`g_chg1`).
    pub fn full(&mut self, family: String, full: Family) -> Option<DbMonEvent> {
        let s = self.families.get_mut(&family)?;
        let (add, chg, del) = match &s.cache {
            None => (full.keys().cloned().collect(), Vec::new(), Vec::new()),
            Some(old) => {
                let add = full
                    .keys()
                    .filter(|k| !old.contains_key(*k))
                    .cloned()
                    .collect();
                let chg = full
                    .iter()
                    .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
                    .map(|(k, _)| k.clone())
                    .collect();
                let del = old
                    .keys()
                    .filter(|k| !full.contains_key(*k))
                    .cloned()
                    .collect();
                (add, chg, del)
            }
        };
        let first = s.cache.is_none();
        let fam = Arc::new(full);
        s.cache = Some(fam.clone());
        event(family, s, fam, add, chg, del, first)
    }

    /// A change from the master (`g_chg2`). Ignored before the first
    /// `g_chg1` (it can only be a leftover of an ended subscription).
    pub fn change(
        &mut self,
        family: String,
        set: Family,
        del_keys: Vec<String>,
    ) -> Option<DbMonEvent> {
        let s = self.families.get_mut(&family)?;
        let cache = s.cache.as_mut()?;
        // Copy-on-write: clones only if the driver still holds the last `fam`.
        let cur = Arc::make_mut(cache);
        let (mut add, mut chg, mut del) = (Vec::new(), Vec::new(), Vec::new());
        for (k, v) in set {
            match cur.insert(k.clone(), v.clone()) {
                None => add.push(k),
                Some(old) if old != v => chg.push(k),
                Some(_) => {}
            }
        }
        for k in del_keys {
            if cur.remove(&k).is_some() {
                del.push(k);
            }
        }
        let fam = cache.clone();
        event(family, s, fam, add, chg, del, false)
    }
}

fn event(
    family: String,
    s: &Subscribed,
    fam: Arc<Family>,
    add: Vec<String>,
    chg: Vec<String>,
    del: Vec<String>,
    first: bool,
) -> Option<DbMonEvent> {
    if !first && add.is_empty() && chg.is_empty() && del.is_empty() {
        return None;
    }
    let monitors = s.subs.iter().copied().collect();
    Some(DbMonEvent {
        family,
        monitors,
        fam,
        add,
        chg,
        del,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fam(v: serde_json::Value) -> Family {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn first_call_then_exact_deltas_then_diff_on_a_new_master() {
        let mut s = Subscriptions::default();
        let (a, b) = (MonId(1), MonId(2));
        assert!(matches!(s.subscribe("f", a), Subscribe::NewFamily));
        s.add_family("f", a, 7);
        assert!(matches!(s.subscribe("f", b), Subscribe::Joined(None)));
        let e = s.full("f".into(), Family::new()).unwrap();
        assert_eq!(
            (e.monitors, e.add.len()),
            (vec![a, b], 0),
            "first call even when empty"
        );
        let e = s
            .change("f".into(), fam(json!({"x": 1, "y": 2})), vec![])
            .unwrap();
        assert_eq!(e.add, ["x", "y"]);
        assert!(s
            .change("f".into(), fam(json!({"x": 1})), vec!["gone".into()])
            .is_none());
        let e = s.full("f".into(), fam(json!({"x": 5, "z": 0}))).unwrap();
        assert_eq!(
            (e.add, e.chg, e.del),
            (vec!["z".into()], vec!["x".into()], vec!["y".into()])
        );
        assert!(s.full("f".into(), fam(json!({"x": 5, "z": 0}))).is_none());
        assert_eq!(s.unsubscribe(a), None);
        assert_eq!(s.unsubscribe(b), Some(("f".into(), 7)));
        assert!(s.change("f".into(), fam(json!({"q": 1})), vec![]).is_none());
    }
}
