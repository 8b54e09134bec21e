//! The json decoder must never panic; input is fed in two pieces split at a
//! point chosen by the first byte, with a small size limit chosen by the second.
#![no_main]

use aemp::transport::framing::{encode, Decoder, Framing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[cut, max], rest)) = data.split_first_chunk::<2>() else { return };
    let at = usize::from(cut) % (rest.len() + 1);
    for max in [usize::from(max) * 16 + 1, aemp::transport::framing::DEFAULT_MAX_PACKET] {
        let mut d = Decoder::with_max_packet(Framing::Json, max);
        for part in [&rest[..at], &rest[at..]] {
            d.feed(part);
            while let Ok(Some(packet)) = d.next_packet() {
                // Whatever decodes must re-encode and decode to the same packet.
                let mut out = Vec::new();
                encode(Framing::Json, &packet, &mut out).unwrap();
                let mut again = Decoder::new(Framing::Json);
                again.feed(&out);
                assert_eq!(again.next_packet().ok().flatten().as_ref(), Some(&packet));
            }
        }
    }
});
