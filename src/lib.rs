//! aemp
