//! Packets from the wire: routing to local ports, and the node-port
//! requests that need the sending node (`mon1`, `mon0`, `kil1`, `kil0`).
//! Everything else for the node port goes to `node_port::route`, which
//! serves `snd`, `time`, `can`, `devnull`, spawn and registered functions,
//! and refuses `eval` and unregistered names.

use super::remote::Remote;
use super::{Net, PeerEvent};
use crate::id::PortId;
use crate::message::{Message, Reason};
use crate::node::Node;
use serde_json::Value;
use std::sync::Arc;

/// Routes one received packet. `Err` names a protocol violation (the
/// connection is then closed).
pub(crate) fn route(
    net: &Arc<Net>,
    node: &Node,
    remote: &Arc<Remote>,
    mut packet: Vec<Value>,
) -> Result<(), String> {
    if packet.is_empty() {
        return Ok(()); // a keepalive
    }
    if net.trace {
        log::info!(target: "aemp::trace", "RCV {} {}", remote.id, Value::Array(packet.clone()));
    }
    let name = match packet.first_mut() {
        Some(Value::String(s)) => std::mem::take(s),
        Some(other) => return Err(format!("packet does not start with a port name: {other}")),
        None => return Ok(()),
    };
    packet.remove(0);
    let msg = Message::from(packet);
    if !name.is_empty() {
        node.deliver_from(&name, msg, &remote.id);
        return Ok(());
    }
    let tag = msg.tag().unwrap_or("");
    let port_arg = || match msg.get(1) {
        Some(Value::String(p)) => Some(p.clone()),
        _ => None,
    };
    match tag {
        "mon1" | "mon0" | "kil1" | "kil0" => {
            let Some(port) = port_arg() else {
                log::warn!(
                    "{}: malformed {tag} request from {}: {msg}",
                    net.id,
                    remote.id
                );
                return Ok(());
            };
            let reason = || Reason(msg.get(2..).unwrap_or(&[]).to_vec());
            match tag {
                "mon1" => net.hold_monitor(remote, &port),
                "mon0" => net.release_monitor(remote, &port),
                "kil0" => net.remote_died(remote, &port, reason()),
                _ => {
                    if port.is_empty() {
                        log::warn!(
                            "{}: {} asked to kill the node port; refused",
                            net.id,
                            remote.id
                        );
                    } else {
                        let target = PortId::from_parts(node.id().as_str(), &port);
                        let _ = node.kil(&target, reason());
                    }
                }
            }
        }
        t if t.starts_with("g_") => net.events.event(
            net,
            PeerEvent::Packet {
                from: remote.id.as_str(),
                tag: t,
                args: msg.get(1..).unwrap_or(&[]),
            },
        ),
        _ => crate::node_port::route(node, msg, Some(&remote.id)),
    }
    Ok(())
}
