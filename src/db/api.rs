//! The distributed database API (AnyEvent::MP 2.x `db_*`, and the
//! `grp_*` compatibility names): `impl Node` plus the guards.
//!
//! Every node keeps the entries it set; its master (the first connected
//! seed, or itself on a global node) holds the merge. Queries and
//! monitors go through the master: without one they wait, in order, and
//! are answered once one is found. Callbacks run on the node's
//! dispatcher, like port callbacks: they must not block.
//!
//! ```
//! use std::time::Duration;
//! // A seed (a global node: its own address is among its seeds) ...
//! let seed = aemp::Node::with_config(
//!     aemp::Config::new("doc-seed/%u").bind("127.0.0.1:0").secret("s"),
//! ).unwrap();
//! let at = seed.listen_addrs()[0].to_string();
//! seed.add_seed(&at).unwrap();
//! // ... and a node that joins through it.
//! let node = aemp::Node::with_config(
//!     aemp::Config::new("doc/%u").bind("127.0.0.1:0").secret("s").seeds([at]),
//! ).unwrap();
//! let svc = node.port_fn(|m| println!("{m}"));
//! let _reg = node.db_reg("services", &svc).unwrap();
//! let keys = node.db_keys_wait("services", Duration::from_secs(5)).unwrap();
//! assert!(keys.contains(&svc.to_string()));
//! ```

use crate::context;
use crate::db::protocol::{DbMonEvent, Family, MonId, QueryResult};
use crate::db::Service;
use crate::error::{Error, Result};
use crate::id::NodeId;
use crate::id::PortId;
use crate::monitor::MonGuard;
use crate::net::{Net, NodeNet};
use crate::node::Node;
use serde_json::Value;
use std::time::Duration;

/// Deletes a database entry when dropped (returned by
/// [`db_set`](Node::db_set) and [`db_reg`](Node::db_reg)).
/// [`forget`](DbGuard::forget) keeps the entry (for `db_reg`: until the
/// port dies).
#[must_use = "dropping the guard deletes the entry at once; call .forget() to keep it"]
pub struct DbGuard {
    inner: Option<(Node, String, String)>,
    mon: Option<MonGuard>,
}

impl DbGuard {
    /// Keeps the entry: dropping does nothing any more.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-dbguard/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// drop(node.db_set("f", "dropped", 1).unwrap()); // set, then deleted
    /// node.db_set("f", "kept", 2).unwrap().forget(); // stays while the node does
    /// assert_eq!(node.db_keys_wait("f", Duration::from_secs(10)).unwrap(), ["kept"]);
    /// ```
    pub fn forget(mut self) {
        self.inner = None;
        if let Some(m) = self.mon.take() {
            m.forget();
        }
    }
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        drop(self.mon.take());
        if let Some((node, family, key)) = self.inner.take() {
            let _ = node.db_del(&family, &[key.as_str()]);
        }
    }
}

impl std::fmt::Debug for DbGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some((_, fam, key)) => write!(f, "DbGuard({fam}/{key})"),
            None => write!(f, "DbGuard(forgotten)"),
        }
    }
}

/// Stops a [`db_mon`](Node::db_mon) subscription when dropped.
#[must_use = "dropping the guard stops the monitor at once; call .forget() to keep it"]
pub struct DbMonGuard {
    inner: Option<(Node, MonId)>,
}

impl DbMonGuard {
    /// Keeps the subscription for the node's lifetime.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-dbmonguard/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// node.db_mon("f", move |ev| tx.send(ev.add.clone()).unwrap()).unwrap().forget();
    /// let t = Duration::from_secs(10);
    /// assert!(rx.recv_timeout(t).unwrap().is_empty()); // the family now: empty
    /// node.db_set("f", "k", 1).unwrap().forget();
    /// assert_eq!(rx.recv_timeout(t).unwrap(), ["k"]); // still watching
    /// ```
    pub fn forget(mut self) {
        self.inner = None;
    }
}

impl Drop for DbMonGuard {
    fn drop(&mut self) {
        if let Some((node, id)) = self.inner.take() {
            if let Ok((net, svc)) = node.db_service("db_mon") {
                svc.with(net, |st| st.remove_mon(id));
            }
        }
    }
}

impl std::fmt::Debug for DbMonGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DbMonGuard({:?})", self.inner.as_ref().map(|(_, id)| id))
    }
}

/// # The distributed database
impl Node {
    fn db_service(&self, what: &'static str) -> Result<(&Net, &Service)> {
        let no = || Error::NoNetwork {
            what,
            node: self.id().clone(),
        };
        let net = self.net().ok_or_else(no)?;
        Ok((net, Service::of(net).ok_or_else(no)?))
    }

    /// Whether this node is a global node (it serves the database).
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-is-global/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// assert!(!node.is_global()); // no seeds
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap(); // its own address
    /// node.db_keys_wait("any", Duration::from_secs(10)).unwrap(); // answered once it serves
    /// assert!(node.is_global());
    /// assert_eq!(node.db_master().as_ref(), Some(node.id()));
    /// ```
    pub fn is_global(&self) -> bool {
        self.db_service("is_global")
            .is_ok_and(|(net, svc)| svc.with(net, |st| st.db.is_global()))
    }

    /// This node's database master (itself on a global node), if any.
    pub fn db_master(&self) -> Option<NodeId> {
        let (net, svc) = self.db_service("db_master").ok()?;
        svc.with(net, |st| st.db.master().map(NodeId::from_trusted))
    }

    /// Sets `family`/`key` to `value` in this node's part of the database
    /// (setting an equal value sends nothing). The guard deletes the entry
    /// when dropped; `.forget()` keeps it. Errors name an invalid family
    /// (`'?[A-Za-z][A-Za-z0-9_:]*`) or an empty key.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use serde_json::json;
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-db-set/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap(); // a global node on its own
    /// let t = Duration::from_secs(10);
    /// let guard = node.db_set("config", "level", json!({"max": 3})).unwrap();
    /// node.db_set("config", "mode", "fast").unwrap().forget(); // stays until the node goes
    /// assert_eq!(node.db_family_wait("config", t).unwrap()["level"], json!({"max": 3}));
    /// drop(guard); // deletes "level"
    /// assert_eq!(node.db_keys_wait("config", t).unwrap(), ["mode"]);
    /// ```
    pub fn db_set(&self, family: &str, key: &str, value: impl Into<Value>) -> Result<DbGuard> {
        let (net, svc) = self.db_service("db_set")?;
        let value = value.into();
        svc.with(net, |st| st.db.db_set(family, key, value))?;
        Ok(DbGuard {
            inner: Some((self.clone(), family.to_string(), key.to_string())),
            mon: None,
        })
    }

    /// Deletes `keys` of `family` that this node set; keys set by other
    /// nodes are never touched.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-db-del/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// for k in ["a", "b", "c"] {
    ///     node.db_set("tmp", k, 0).unwrap().forget();
    /// }
    /// node.db_del("tmp", &["a", "c"]).unwrap();
    /// assert_eq!(node.db_keys_wait("tmp", Duration::from_secs(10)).unwrap(), ["b"]);
    /// ```
    pub fn db_del(&self, family: &str, keys: &[&str]) -> Result<()> {
        let (net, svc) = self.db_service("db_del")?;
        svc.with(net, |st| st.db.db_del(family, keys))?;
        Ok(())
    }

    /// Registers the local `port` in `family` (key: the port ID, value:
    /// `null`): the entry goes when the port dies, however it dies, or
    /// when the guard drops.
    ///
    /// ```
    /// use aemp::{Config, Node, Reason};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-db-reg/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// let t = Duration::from_secs(10);
    /// let worker = node.port_fn(|_| {});
    /// node.db_reg("workers", &worker).unwrap().forget(); // until the port dies
    /// assert_eq!(node.db_keys_wait("workers", t).unwrap(), [worker.to_string()]);
    /// node.kil(&worker, Reason::normal()).unwrap();
    /// // The entry goes with the port (deleted from the port's monitor: soon, not at once).
    /// let mut keys = node.db_keys_wait("workers", t).unwrap();
    /// for _ in 0..500 {
    ///     if keys.is_empty() { break }
    ///     std::thread::sleep(Duration::from_millis(10));
    ///     keys = node.db_keys_wait("workers", t).unwrap();
    /// }
    /// assert!(keys.is_empty());
    /// ```
    pub fn db_reg(&self, family: &str, port: &PortId) -> Result<DbGuard> {
        self.db_reg_value(family, port, Value::Null)
    }

    /// [`db_reg`](Node::db_reg) with a value.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-db-reg-value/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// let printer = node.port_fn(|_| {});
    /// let _reg = node.db_reg_value("printers", &printer, "3rd floor").unwrap();
    /// let family = node.db_family_wait("printers", Duration::from_secs(10)).unwrap();
    /// assert_eq!(family[printer.as_str()], "3rd floor");
    /// ```
    pub fn db_reg_value(
        &self,
        family: &str,
        port: &PortId,
        value: impl Into<Value>,
    ) -> Result<DbGuard> {
        if !self.port_is_local(port) {
            return Err(Error::NotLocal {
                what: "db_reg",
                port: port.clone(),
            });
        }
        let key = port.to_string();
        let mut guard = self.db_set(family, &key, value)?;
        let (node, fam) = (self.clone(), family.to_string());
        guard.mon = Some(self.mon_internal(port, move |_| {
            let _ = node.db_del(&fam, &[key.as_str()]);
        }));
        Ok(guard)
    }

    /// [`db_reg`](Node::db_reg) of the port whose callback is running
    /// (`$SELF`); an error outside port context.
    ///
    /// ```
    /// use aemp::{msg, Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-db-reg-self/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// let n = node.clone();
    /// let service = node.port_fn(move |m| {
    ///     if m.tag() == Some("start") {
    ///         n.db_reg_self("services").unwrap().forget(); // registers this port
    ///     }
    /// });
    /// node.snd(&service, msg!["start"]);
    /// let mut keys = vec![];
    /// for _ in 0..500 {
    ///     keys = node.db_keys_wait("services", Duration::from_secs(10)).unwrap();
    ///     if !keys.is_empty() { break }
    ///     std::thread::sleep(Duration::from_millis(10));
    /// }
    /// assert_eq!(keys, [service.to_string()]);
    /// assert!(node.db_reg_self("services").is_err()); // not inside a port's code
    /// ```
    pub fn db_reg_self(&self, family: &str) -> Result<DbGuard> {
        let port = context::self_port().ok_or(Error::NoCurrentPort {
            what: "db_reg_self",
        })?;
        self.db_reg(family, &port)
    }

    fn db_query(
        &self,
        what: &'static str,
        family: &str,
        kind: crate::db::protocol::QueryKind,
        cb: Box<dyn FnOnce(QueryResult) + Send>,
    ) -> Result<()> {
        let (net, svc) = self.db_service(what)?;
        svc.with(net, |st| {
            let q = match kind {
                crate::db::protocol::QueryKind::Family => st.db.db_family(family),
                crate::db::protocol::QueryKind::Keys => st.db.db_keys(family),
                crate::db::protocol::QueryKind::Values => st.db.db_values(family),
            }?;
            st.add_query(q, cb);
            Ok(())
        })
    }

    /// Asks the master for the whole `family` (`{}` if unknown); `f` gets
    /// it on the dispatcher (it may keep it).
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-db-family/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// node.db_set("hosts", "web", "10.0.0.1").unwrap().forget();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// // The callback form, usable inside callbacks (the `_wait` forms are not).
    /// node.db_family("hosts", move |fam| tx.send(fam).unwrap()).unwrap();
    /// let fam = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    /// assert_eq!(fam["web"], "10.0.0.1");
    /// ```
    pub fn db_family(&self, family: &str, f: impl FnOnce(Family) + Send + 'static) -> Result<()> {
        use crate::db::protocol::QueryKind;
        self.db_query(
            "db_family",
            family,
            QueryKind::Family,
            Box::new(move |r| {
                if let QueryResult::Family(m) = r {
                    f(m)
                }
            }),
        )
    }

    /// Asks the master for the keys of `family`.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-db-keys/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// node.db_keys("nothing_here", move |keys| tx.send(keys).unwrap()).unwrap();
    /// assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap().is_empty());
    /// ```
    pub fn db_keys(
        &self,
        family: &str,
        f: impl FnOnce(Vec<String>) + Send + 'static,
    ) -> Result<()> {
        use crate::db::protocol::QueryKind;
        self.db_query(
            "db_keys",
            family,
            QueryKind::Keys,
            Box::new(move |r| {
                if let QueryResult::Keys(k) = r {
                    f(k)
                }
            }),
        )
    }

    /// Asks the master for the values of `family`.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-db-values/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// node.db_set("load", "a", 1).unwrap().forget();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// node.db_values("load", move |v| tx.send(v).unwrap()).unwrap();
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), [serde_json::json!(1)]);
    /// ```
    pub fn db_values(
        &self,
        family: &str,
        f: impl FnOnce(Vec<Value>) + Send + 'static,
    ) -> Result<()> {
        use crate::db::protocol::QueryKind;
        self.db_query(
            "db_values",
            family,
            QueryKind::Values,
            Box::new(move |r| {
                if let QueryResult::Values(v) = r {
                    f(v)
                }
            }),
        )
    }

    fn db_wait<T: Send + 'static>(
        &self,
        what: &'static str,
        family: &str,
        timeout: Duration,
        ask: impl FnOnce(&Node, Box<dyn FnOnce(T) + Send>) -> Result<()>,
    ) -> Result<T> {
        if context::on_dispatcher() {
            return Err(Error::WouldBlockDispatcher { what });
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        ask(
            self,
            Box::new(move |v| {
                let _ = tx.send(v);
            }),
        )?;
        rx.recv_timeout(timeout).map_err(|_| Error::DbTimeout {
            what,
            family: family.to_string(),
            after: timeout,
            cause: self
                .db_service(what)
                .ok()
                .filter(|_| self.db_master().is_none())
                .and_then(|(net, _)| net.seed_failure()),
        })
    }

    /// [`db_family`](Node::db_family), waiting up to `timeout` for the
    /// answer: [`Error::DbTimeout`] after it (e.g. while no global node is
    /// reachable). Refused on the dispatcher thread.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-db-family-wait/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// node.db_set("users", "ann", 31).unwrap().forget();
    /// let fam = node.db_family_wait("users", Duration::from_secs(10)).unwrap();
    /// assert_eq!(fam["ann"], 31);
    ///
    /// // No global node to ask: the time-out is an error.
    /// let alone = Node::with_config(Config::new("doc-alone/").secret("s")).unwrap();
    /// assert!(alone.db_family_wait("users", Duration::from_millis(100)).is_err());
    /// ```
    pub fn db_family_wait(&self, family: &str, timeout: Duration) -> Result<Family> {
        self.db_wait("db_family_wait", family, timeout, |n, cb| {
            n.db_family(family, cb)
        })
    }

    /// [`db_keys`](Node::db_keys), waiting up to `timeout`.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-db-keys-wait/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// node.db_set("colours", "red", 1).unwrap().forget();
    /// node.db_set("colours", "blue", 2).unwrap().forget();
    /// let mut keys = node.db_keys_wait("colours", Duration::from_secs(10)).unwrap();
    /// keys.sort();
    /// assert_eq!(keys, ["blue", "red"]);
    /// ```
    pub fn db_keys_wait(&self, family: &str, timeout: Duration) -> Result<Vec<String>> {
        self.db_wait("db_keys_wait", family, timeout, |n, cb| {
            n.db_keys(family, cb)
        })
    }

    /// [`db_values`](Node::db_values), waiting up to `timeout`.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-db-values-wait/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// node.db_set("ports", "http", 80).unwrap().forget();
    /// let values = node.db_values_wait("ports", Duration::from_secs(10)).unwrap();
    /// assert_eq!(values, [serde_json::json!(80)]);
    /// ```
    pub fn db_values_wait(&self, family: &str, timeout: Duration) -> Result<Vec<Value>> {
        self.db_wait("db_values_wait", family, timeout, |n, cb| {
            n.db_values(family, cb)
        })
    }

    /// Monitors `family`: `f` is called promptly with the current contents
    /// (every key in `add`, even for an empty family), then with each
    /// change (`add`, `chg`, `del`; `fam` is the whole family after it).
    /// After a master change the subscription is re-sent and `f` sees
    /// only the differences. Dropping the guard stops it.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// // A global node on its own (its own address is its seed).
    /// let node = Node::with_config(Config::new("doc/db_mon").bind("127.0.0.1:0").secret("s"))
    ///     .unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// let _mon = node
    ///     .db_mon("jobs", move |ev| tx.send((ev.add.clone(), ev.chg.clone())).unwrap())
    ///     .unwrap();
    /// assert_eq!(rx.recv().unwrap(), (vec![], vec![])); // the (empty) family now
    /// let _entry = node.db_set("jobs", "j1", "queued").unwrap();
    /// assert_eq!(rx.recv().unwrap(), (vec!["j1".to_string()], vec![]));
    /// node.db_set("jobs", "j1", "done").unwrap().forget();
    /// assert_eq!(rx.recv().unwrap(), (vec![], vec!["j1".to_string()]));
    /// ```
    pub fn db_mon(
        &self,
        family: &str,
        f: impl FnMut(&DbMonEvent) + Send + 'static,
    ) -> Result<DbMonGuard> {
        let (net, svc) = self.db_service("db_mon")?;
        let id = svc.with(net, |st| -> Result<MonId> {
            let id = st.db.db_mon(family)?;
            st.add_mon(id, Box::new(f));
            Ok(id)
        })?;
        Ok(DbMonGuard {
            inner: Some((self.clone(), id)),
        })
    }

    /// Compatibility (`grp_reg`): [`db_reg`](Node::db_reg).
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// use std::time::Duration;
    /// let node = Node::with_config(Config::new("doc-grp/").bind("127.0.0.1:0").secret("s")).unwrap();
    /// node.add_seed(&node.listen_addrs()[0].to_string()).unwrap();
    /// let p = node.port_fn(|_| {});
    /// node.grp_reg("printers", &p).unwrap().forget();
    /// node.db_keys_wait("printers", Duration::from_secs(10)).unwrap(); // now registered
    /// assert_eq!(node.grp_get("printers"), Some(vec![p.to_string()])); // a global node's own view
    /// assert_eq!(node.grp_get("nobody"), None);
    /// ```
    pub fn grp_reg(&self, group: &str, port: &PortId) -> Result<DbGuard> {
        self.db_reg(group, port)
    }

    /// Compatibility (`grp_get`): the group's ports from this node's
    /// global database; `None` on a non-global node or for an empty group.
    /// Use [`db_keys`](Node::db_keys) instead.
    pub fn grp_get(&self, group: &str) -> Option<Vec<String>> {
        let (net, svc) = self.db_service("grp_get").ok()?;
        let keys = svc.with(net, |st| st.db.global_store().map(|s| s.keys(group)))?;
        (!keys.is_empty()).then_some(keys)
    }

    /// Compatibility (`grp_mon`): [`db_mon`](Node::db_mon) with the
    /// arguments `(ports, added, deleted)`; the first call only when the
    /// group is non-empty.
    pub fn grp_mon(
        &self,
        group: &str,
        mut f: impl FnMut(&[String], &[String], &[String]) + Send + 'static,
    ) -> Result<DbMonGuard> {
        let mut first = true;
        self.db_mon(group, move |ev| {
            let (ports, add, del) = ev.grp_args();
            let was_first = std::mem::replace(&mut first, false);
            if was_first && ports.is_empty() {
                return;
            }
            if !was_first && add.is_empty() && del.is_empty() {
                return;
            }
            f(&ports, add, del)
        })
    }
}
