//! aemp
pub mod transport;
