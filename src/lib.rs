//! aemp
pub mod rpc;
