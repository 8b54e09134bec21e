//! The database protocol (`aemp::protocol::db`) alone: `DbNode`s on
//! simulated networks (acceptance items 83–96) and against the captured
//! Perl session. The database over real connections is tested in
//! `tests/db_network`.
//!
//! - `sim.rs`: the simulated network the other files use.
//! - `cluster.rs`: globals and slaves on a healthy network.
//! - `failover.rs`: master loss and network splits.
//! - `interop.rs`: the packets of the captured Perl sessions.
//! - `random.rs`: random operations, every `db_mon` event checked.
//! - `robust.rs`: malformed packets never panic.

mod cluster;
mod failover;
mod interop;
mod random;
mod robust;
mod sim;
