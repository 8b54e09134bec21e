//! The node port (`""`) and named functions: `register`, `spawn`,
//! `snd_to_func`, and the node-port requests of the protocol notes §9 that make
//! sense without a network (`snd`, `time`, `can`, `devnull`, spawn, and
//! registered functions). Nothing that was not registered ever runs.

use crate::context;
use crate::error::{Error, Result};
use crate::id::{NodeId, PortId};
use crate::message::{Message, Reason};
use crate::node::Node;
use crate::port::{DefaultHandler, Handlers, Item};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A function callable by name: a spawn init function or a `snd_to_func`
/// target. It gets the arguments as a message.
pub(crate) type Func = Arc<dyn Fn(Message) + Send + Sync>;
type Loader = Arc<dyn Fn(&Node) + Send + Sync>;

/// The node port's request tags that are not user functions.
const BUILTIN: &[&str] = &[
    "", "snd", "time", "can", "devnull", "mon0", "mon1", "kil0", "kil1",
];
const SPAWN: &str = "AnyEvent::MP::_spawn";

#[derive(Default)]
pub(crate) struct Functions {
    by_name: HashMap<String, Func>,
    loaders: HashMap<String, Loader>,
    loaded: HashSet<String>,
    /// Functions whose requests run at once on the routing thread (see
    /// `register_immediate`).
    immediate: HashSet<String>,
}

/// # Spawning and registered functions
impl Node {
    /// Registers `f` under `name` (e.g. `"chat::client_connect"`), for
    /// [`spawn`](Node::spawn) and for `snd_to_func` requests from other
    /// nodes. Rust cannot load code by name, so registration replaces the
    /// original's autoload: unknown names are refused.
    ///
    /// Inside a spawn init function, [`self_port`](crate::self_port) is the
    /// new port; the function must install a callback (e.g. with
    /// [`rcv`](Node::rcv)) or the port ceases to exist.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// let node = Node::new("doc/register").unwrap();
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// // A function other nodes may call by name (`snd_to_func`), or spawn.
    /// node.register("doc::log", move |args| tx.send(args).unwrap());
    /// // What a peer's ["", "doc::log", ...] node-port request does:
    /// node.snd(&node.node_port(), msg!["doc::log", "started", 1]);
    /// assert_eq!(rx.recv().unwrap(), msg!["started", 1]);
    /// ```
    pub fn register(&self, name: &str, f: impl Fn(Message) + Send + Sync + 'static) {
        self.inner
            .functions
            .write()
            .by_name
            .insert(name.to_string(), Arc::new(f));
    }

    /// Like [`register`](Node::register), but a request for `name` runs
    /// at once on the thread that routes it, in order with the built-in
    /// requests around it (`snd` above all), not later on the dispatcher:
    /// for the library's own short, non-blocking protocol functions (data
    /// connections' `_expect` must be in place before the `snd` reply
    /// that follows it).
    pub(crate) fn register_immediate(
        &self,
        name: &str,
        f: impl Fn(Message) + Send + Sync + 'static,
    ) {
        self.register(name, f);
        self.inner
            .functions
            .write()
            .immediate
            .insert(name.to_string());
    }

    /// Registers a loader for a package (`"chat"` or `"chat::server"`): the
    /// first time a function under it is not found, the loader runs (once)
    /// and may register functions. Lookups try the longest package first,
    /// like the original's `load_func`.
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// use std::time::Duration;
    /// let node = Node::new("doc/register_loader").unwrap();
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// // Registers the "chat::" functions the first time one of them is asked for.
    /// node.register_loader("chat", move |node| {
    ///     let tx = tx.clone();
    ///     node.register("chat::hello", move |args| tx.send(args).unwrap());
    /// });
    /// node.snd(node.node_port(), msg!["chat::hello", "world"]);
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), msg!["world"]);
    /// ```
    pub fn register_loader(&self, package: &str, loader: impl Fn(&Node) + Send + Sync + 'static) {
        self.inner
            .functions
            .write()
            .loaders
            .insert(package.to_string(), Arc::new(loader));
    }

    /// Runs the loader registered for `package` (`"chat"`) unless it ran
    /// already; `false` if there is none.
    pub(crate) fn load_package(&self, package: &str) -> bool {
        let loader = {
            let mut fns = self.inner.functions.write();
            let Some(l) = fns.loaders.get(package).cloned() else {
                return false;
            };
            fns.loaded.insert(package.to_string()).then_some(l)
        };
        if let Some(load) = loader {
            load(self);
        }
        true
    }

    /// Whether `name` can be resolved without running user code: `Some(true)`
    /// if registered, `Some(false)` if no loader that may still register it
    /// is left to run, `None` if one is.
    fn resolvable(&self, name: &str) -> Option<bool> {
        let fns = self.inner.functions.read();
        if fns.by_name.contains_key(name) {
            return Some(true);
        }
        let mut package = name;
        while let Some((parent, _)) = package.rsplit_once("::") {
            if fns.loaders.contains_key(parent) && !fns.loaded.contains(parent) {
                return None;
            }
            package = parent;
        }
        Some(false)
    }

    /// The function registered under `name`, running package loaders if
    /// needed.
    pub(crate) fn function(&self, name: &str) -> Option<Func> {
        if let Some(f) = self.inner.functions.read().by_name.get(name) {
            return Some(f.clone());
        }
        let mut package = name;
        while let Some((parent, _)) = package.rsplit_once("::") {
            let loader = {
                let mut fns = self.inner.functions.write();
                match fns.loaders.get(parent).cloned() {
                    Some(l) if fns.loaded.insert(parent.to_string()) => Some(l),
                    _ => None,
                }
            };
            if let Some(load) = loader {
                load(self);
                if let Some(f) = self.inner.functions.read().by_name.get(name) {
                    return Some(f.clone());
                }
            }
            package = parent;
        }
        None
    }

    /// Creates a port on `node` by running the init function registered
    /// there under `func` with `args`, and returns its ID at once.
    ///
    /// The init function never runs before `spawn` returns; messages sent
    /// to the new port before it ran are delivered in order once it
    /// installed its callbacks. A panicking init kills the port with
    /// `["die", ...]`. `func` must contain `::`.
    ///
    /// A name the target node cannot resolve when the request arrives
    /// creates no port at all: the target logs a warning naming the
    /// function and the asking node, and every monitor of the returned
    /// port gets `["no_such_port", ...]`, whenever it was placed. This is
    /// AnyEvent::MP's answer too (its init runs, and fails, before any
    /// monitor can arrive), and it does not depend on timing. (Only a name
    /// whose package loader is still to run is looked up with the init,
    /// on the dispatcher; if the loader does not register it, the port
    /// dies with `["die", "unable to resolve function ..."]`.)
    ///
    /// ```
    /// use aemp::{msg, Node};
    /// let node = Node::new("doc/spawn").unwrap();
    /// node.register("doc::echo", |_args| {
    ///     let me = aemp::self_port().unwrap();
    ///     aemp::rcv_default(&me, |m| println!("echo got {m}")).unwrap();
    /// });
    /// let echo = node.spawn(node.id(), "doc::echo", msg![]).unwrap();
    /// node.snd(&echo, msg!["hello"]);
    ///
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let missing = node.spawn(node.id(), "doc::missing", msg![]).unwrap();
    /// node.mon(&missing, move |r| tx.send(r).unwrap()).forget();
    /// assert_eq!(rx.recv().unwrap().kind(), Some("no_such_port"));
    /// ```
    pub fn spawn(&self, node: &NodeId, func: &str, args: Message) -> Result<PortId> {
        if !func.contains("::") {
            return Err(Error::InvalidFunctionName {
                name: func.to_string(),
                problem: "a spawn init function name must contain '::' (e.g. \"chat::client\")",
            });
        }
        let name = self.new_spawn_name();
        if node == self.id() {
            self.spawn_named(&name, func, args, None);
        } else {
            let mut request = crate::msg![SPAWN, &name, func];
            request.extend(args);
            self.snd(&node.node_port(), request);
        }
        Ok(PortId::from_parts(node.as_str(), &name))
    }

    /// Calls the function registered as `func` on `node` with `args`
    /// (asynchronously; errors are logged on the target).
    ///
    /// ```
    /// use aemp::{msg, Config, Node};
    /// use std::time::Duration;
    /// // Two nodes in one process, over 127.0.0.1.
    /// let cfg = |id: &str| Config::new(id).bind("127.0.0.1:0").secret("s");
    /// let a = Node::with_config(cfg("doc-stf-a/")).unwrap();
    /// let b = Node::with_config(cfg("doc-stf-b/")).unwrap();
    /// b.add_address(a.id(), &a.listen_addrs()[0].to_string()).unwrap();
    ///
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// a.register("doc::notify", move |args| tx.send(args).unwrap());
    /// b.snd_to_func(a.id(), "doc::notify", msg!["disk", 93]); // runs on a
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), msg!["disk", 93]);
    /// ```
    pub fn snd_to_func(&self, node: &NodeId, func: &str, args: Message) {
        let mut request = crate::msg![func];
        request.extend(args);
        self.snd(&node.node_port(), request);
    }

    /// Creates the spawned port `name` (see [`spawn`](Node::spawn)); `src`
    /// is the asking node, `None` for this one.
    pub(crate) fn spawn_named(
        &self,
        name: &str,
        func: &str,
        args: Message,
        src: Option<&Arc<NodeId>>,
    ) {
        if self.resolvable(func) == Some(false) {
            let from = src.map_or_else(|| "this node".to_string(), |n| format!("node {n}"));
            log::warn!(
                "spawn from {from}: unable to resolve function '{func}'; no port {name} created"
            );
            return;
        }
        let id = PortId::from_parts(self.id().as_str(), name);
        let cell = self.new_cell(id, Handlers::new(DefaultHandler::Ignore));
        if !self.insert_named(&cell) {
            log::warn!("spawn of {func}: port name {name} is already in use; ignored");
            return;
        }
        self.push(
            &cell,
            Item::Init(Box::new(crate::port::Init {
                func: func.to_string(),
                args,
            })),
        );
    }
}

/// Runs a spawned port's init function (in the port's context, on the
/// dispatcher); the kill reason if it failed.
pub(crate) fn run_init(node: &Node, func: &str, args: Message) -> Option<Reason> {
    match node.function(func) {
        None => Some(Reason::die(format!("unable to resolve function '{func}'"))),
        Some(f) => context::catch(|| f(args)).err().map(Reason::die),
    }
}

/// `["snd", PORT, msg...]`: sends `msg` on to `PORT`. A request from
/// another node keeps that node as the source: a local port sees it in
/// [`src_node`](crate::src_node), so a peer cannot pass its messages off as
/// local ones by relaying them through the node port. Relays to this
/// node's own node port are unwrapped in a loop, never recursively, so no
/// nesting can exhaust the stack.
fn relay(node: &Node, mut msg: Message, src: Option<&Arc<NodeId>>) {
    // `msg[at]` is the next destination; the elements before it are
    // unwrapped relays, dropped once at the end.
    let mut at = 0;
    let port = loop {
        let port = match msg.port_at(at) {
            Some(Ok(port)) => port,
            Some(Err(e)) => return log::warn!("node port: bad snd relay request: {e}"),
            None => return log::warn!("node port: snd relay request without a port"),
        };
        at += 1;
        let again =
            node.port_is_local(&port) && port.is_node_port() && msg.str_at(at) == Some("snd");
        if !again {
            break port;
        }
        at += 1;
    };
    // (A compact message stays compact without its one relay header.)
    if at == 1 {
        msg = msg.without_tag();
    } else {
        msg.drain(..at);
    }
    if !node.port_is_local(&port) {
        node.snd(&port, msg);
    } else if port.is_node_port() {
        route(node, msg, src);
    } else {
        match src {
            Some(src) => node.deliver_from(port.name(), msg, src),
            None => node.snd(&port, msg),
        }
    }
}

/// Serves a request `[tag, args...]` sent to this node's node port.
///
/// Built-in requests are handled at once, on the sending (or, later,
/// routing) thread, so that they keep their order with the messages around
/// them: a spawn creates its port before the next message for it is
/// routed. Only registered functions — user code — go through the node
/// port's inbox to the dispatcher.
pub(crate) fn route(node: &Node, mut msg: Message, src: Option<&Arc<NodeId>>) {
    // (Read without making the vector of a compact message.)
    let tag = match msg.tag() {
        Some(t) => t.to_owned(),
        None => {
            if let Some(other) = msg.first() {
                log::warn!("node port: ignoring request with non-string tag {other}");
            }
            return;
        }
    };
    match tag.as_str() {
        "" | "devnull" => {}
        "snd" => relay(node, msg.without_tag(), src),
        "time" => reply(node, &msg[1..], vec![Value::from(unix_time())]),
        "can" => {
            let asked = msg.get(1).and_then(Value::as_str).unwrap_or("");
            let can = BUILTIN.contains(&asked) || asked == SPAWN || node.function(asked).is_some();
            let dest = msg.get(2..).unwrap_or(&[]);
            reply(node, dest, vec![Value::from(if can { "1" } else { "" })]);
        }
        SPAWN => match (msg.get(1), msg.get(2)) {
            (Some(Value::String(name)), Some(Value::String(func))) => {
                let (name, func) = (name.clone(), func.clone());
                let args: Message = msg.drain(3..).collect();
                node.spawn_named(&name, &func, args, src);
            }
            _ => log::warn!("node port: malformed spawn request {msg}"),
        },
        "eval" => log::warn!("node port: refusing eval request (aemp never evaluates code)"),
        t if node.inner.functions.read().immediate.contains(t) => call_function(node, msg),
        // The network handles these before routing, knowing the sender.
        "mon0" | "mon1" | "kil0" | "kil1" => {
            log::debug!("node port: ignoring {tag}, which only means something on a connection")
        }
        _ => node.push_node_port(msg, src),
    }
}

/// Calls a registered function for a node-port request (on the dispatcher).
pub(crate) fn call_function(node: &Node, msg: Message) {
    let Some(name) = msg.tag().map(str::to_owned) else {
        return;
    };
    let msg = msg.without_tag();
    match node.function(&name) {
        Some(f) => {
            if let Err(text) = context::catch(|| f(msg)) {
                log::error!("node port: function {name} panicked: {text}");
            }
        }
        None => log::warn!("node port: refusing to call unregistered function {name:?}"),
    }
}

/// Sends `result` to a reply destination: a port ID followed by prefix
/// values (`[port, prefix...]` → `[prefix..., result...]`).
fn reply(node: &Node, dest: &[Value], result: Vec<Value>) {
    let Some(port) = dest.first() else {
        log::debug!("node port: request without reply port");
        return;
    };
    match PortId::try_from(port) {
        Ok(port) => {
            let mut msg: Message = dest[1..].iter().cloned().collect();
            msg.extend(result);
            node.snd(&port, msg);
        }
        Err(e) => log::warn!("node port: bad reply port: {e}"),
    }
}

fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
