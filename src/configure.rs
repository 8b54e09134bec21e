//! Building networked nodes: [`Node::with_config`] puts the network
//! (`crate::net`) and the database service (`crate::db`) together; and
//! configuring a node from the configuration file, like the original's
//! `configure`: [`rcfile::resolve`](crate::rcfile::resolve) (defaults,
//! arguments, global keys, parent chain, profile), then
//! [`Config::from_rc`], then the `services`.
//!
//! Seeds are not used yet (they come with discovery); the `aemp` tool
//! reads them itself.

use crate::context;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::net::Config;
use crate::node::Node;
use crate::rcfile::{self, RcFile, Service};
use serde_json::{Map, Value};

/// # Creating networked nodes (from a `Config` or the configuration file)
impl Node {
    /// Creates a networked node from `cfg`: expands its ID, binds its
    /// listen addresses, starts its reactor thread and its database
    /// service, and registers the log catcher's functions
    /// ([`logcatch::CONNECT_FN`](crate::logcatch::CONNECT_FN) and
    /// [`logcatch::CATCH_FN`](crate::logcatch::CATCH_FN)).
    ///
    /// ```
    /// let node = aemp::Node::with_config(
    ///     aemp::Config::new("doc/%u").bind("127.0.0.1:0").secret("s"),
    /// ).unwrap();
    /// assert_eq!(node.listen_addrs().len(), 1);
    /// ```
    pub fn with_config(cfg: Config) -> Result<Node> {
        let node = crate::net::start(cfg, |me| std::sync::Arc::new(crate::db::Service::new(me)))?;
        crate::dataconn::install(&node);
        // Every networked node can be caught (AnyEvent::MP::LogCatcher).
        crate::logcatch::register(&node);
        Ok(node)
    }

    /// Creates a networked node from the configuration file `rc`, the
    /// `profile` (default: the host name) and `args` (the `configure`
    /// arguments; they may carry `profile`, `norc` and `force`), as
    /// [`rcfile::resolve`] merges them. `setup` runs on the new node
    /// first, to [`register`](Node::register) the functions that
    /// `services` name; then each service runs, in order, in the node's
    /// context (free functions such as [`port`](crate::port) act on it).
    ///
    /// `services` entries: `"f"` calls the registered function `f` with
    /// no arguments, `["f", args...]` calls it with `args`, `"Pkg::"` runs
    /// the loader registered for `Pkg` (see
    /// [`register_loader`](Node::register_loader)). An unknown name or a
    /// panicking service stops there with [`Error::Service`] naming it
    /// (the node is dropped, its listeners closed).
    ///
    /// ```
    /// use aemp::rcfile::RcFile;
    /// let rc = RcFile::from_json(r#"{"secret": "s", "binds": ["127.0.0.1:0"],
    ///     "services": [["demo::hello", "world"]]}"#).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let node = aemp::Node::from_profile(&rc, Some("p"), &Default::default(), |n| {
    ///     let tx = std::sync::Mutex::new(tx);
    ///     n.register("demo::hello", move |args| tx.lock().unwrap().send(args).unwrap());
    /// }).unwrap();
    /// assert!(node.id().as_str().starts_with("p/"));
    /// assert_eq!(rx.recv().unwrap(), aemp::msg!["world"]);
    /// ```
    pub fn from_profile(
        rc: &RcFile,
        profile: Option<&str>,
        args: &Map<String, Value>,
        setup: impl FnOnce(&Node),
    ) -> Result<Node> {
        let (node, services) = build(rc, profile, args)?;
        setup(&node);
        run_services(&node, &services)?;
        Ok(node)
    }
}

/// [`configure`](crate::configure) from the configuration file (see
/// [`rcfile::default_path`]): makes the process-wide node the node that
/// [`Node::from_profile`] builds and returns it.
///
/// Like [`configure`](crate::configure), it must come first and only
/// once: when the process-wide node exists already it fails with
/// [`Error::AlreadyConfigured`] and changes nothing. The node becomes the
/// process-wide node before the services run. A failing service returns
/// its [`Error::Service`]; the process-wide node then stays set, but its
/// network is shut down.
///
/// ```
/// use serde_json::Map;
/// use std::time::Duration;
/// // A deployed program: the file (here a temporary one) names its profile's settings.
/// let dir = tempfile::tempdir().unwrap();
/// let rc = dir.path().join("rc");
/// std::fs::write(&rc, r#"{"version": 1, "secret": "s", "profile": {"worker": {
///     "nodeid": "worker/", "binds": ["127.0.0.1:0"], "services": ["app::start"] }}}"#).unwrap();
/// std::env::set_var("AEMP_RC", &rc);
///
/// let (tx, rx) = crossbeam_channel::bounded(1);
/// let node = aemp::configure_profile(Some("worker"), &Map::new(), |node| {
///     node.register("app::start", move |_| tx.send(aemp::node().id().clone()).unwrap());
/// }).unwrap();
/// assert!(node.id().as_str().starts_with("worker/"));
/// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), *node.id()); // in its context
/// assert_eq!(aemp::default_node().id(), node.id()); // the process-wide node now
/// ```
pub fn configure_profile(
    profile: Option<&str>,
    args: &Map<String, Value>,
    setup: impl FnOnce(&Node),
) -> Result<Node> {
    let already = |node: &Node| Error::AlreadyConfigured {
        node: node.id().clone(),
    };
    if let Some(existing) = crate::DEFAULT_NODE.get() {
        return Err(already(existing));
    }
    let rc = RcFile::load_default();
    let (node, services) = build(&rc, profile, args)?;
    setup(&node);
    crate::DEFAULT_NODE
        .set(node.clone())
        .map_err(|existing| already(&existing))?;
    if let Err(e) = run_services(&node, &services) {
        node.net_shutdown();
        return Err(e);
    }
    Ok(node)
}

fn build(
    rc: &RcFile,
    profile: Option<&str>,
    args: &Map<String, Value>,
) -> Result<(Node, Vec<Service>)> {
    let resolved = rcfile::resolve(rc, profile, args, false, false)?;
    let cfg = Config::from_rc(&resolved)?;
    let services = rcfile::services(&resolved.config)?;
    log::debug!(
        "configure: profile {:?}, node {}",
        resolved.profile,
        cfg.node_id
    );
    Ok((Node::with_config(cfg)?, services))
}

fn run_services(node: &Node, services: &[Service]) -> Result<()> {
    for service in services {
        let previous = context::set_node(Some(node.clone()));
        let outcome = run_service(node, service);
        context::set_node(previous);
        outcome?;
    }
    Ok(())
}

fn run_service(node: &Node, service: &Service) -> Result<()> {
    match service {
        Service::Module(name) => {
            let package = name.trim_end_matches("::");
            if node.load_package(package) {
                Ok(())
            } else {
                Err(Error::Service {
                    name: name.clone(),
                    problem: format!("no loader is registered for package {package:?}"),
                })
            }
        }
        Service::Call { func, args } => {
            let Some(f) = node.function(func) else {
                return Err(Error::Service {
                    name: func.clone(),
                    problem: "no such registered function".into(),
                });
            };
            log::info!("service {func}");
            context::catch(|| f(Message::from(args.clone()))).map_err(|text| Error::Service {
                name: func.clone(),
                problem: format!("failed: {text}"),
            })
        }
    }
}
