//! The distributed database: the protocol, the service that drives it on
//! a networked node, and the user API.

mod api;
pub mod protocol;

pub use api::{DbGuard, DbMonGuard};
