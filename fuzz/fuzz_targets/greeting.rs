//! Greeting line 1 and auth-line parsing must never panic; what parses
//! must re-parse identically after encoding.
#![no_main]

use aemp::transport::auth::AuthLine;
use aemp::transport::greeting::Greeting;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = Greeting::parse(data) {
        let again = Greeting::parse(g.encode().as_bytes());
        assert_eq!(again.as_ref().ok(), Some(&g));
        let _ = g.offers_tls();
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = AuthLine::parse(s);
    }
});
