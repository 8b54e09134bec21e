//! The handshake state machine must never panic, whatever the peer sends
//! and however it is split; the first byte picks the configuration and the
//! split point.
#![no_main]

use std::time::Instant;

use aemp::transport::handshake::{Config, Handshake};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let mut cfg = Config::new("me");
    if sel & 1 != 0 {
        cfg.secret = Some(b"geheim".to_vec());
    }
    cfg.have_cert = sel & 2 != 0;
    let now = Instant::now();
    let mut hs = Handshake::new(cfg, now);
    let at = usize::from(sel >> 2) % (rest.len() + 1);
    for part in [&rest[..at], &rest[at..]] {
        let _ = hs.feed(part);
        let _ = hs.tls_established();
        let _ = hs.take_output();
    }
    let _ = hs.check_timeout(now);
    let _ = hs.eof();
});
