//! The distributed database on simulated networks (acceptance items 83–96)
//! and against the captured Perl session.

mod cluster;
mod failover;
mod interop;
mod random;
mod robust;
mod sim;
