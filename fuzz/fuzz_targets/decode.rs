//! One captured frame → TCP segment: the light path for common frames must
//! agree with the general etherparse path on every input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor::capture::decode::{decode, decode_general, linktype};

const LINKTYPES: [i32; 9] = [
    linktype::ETHERNET,
    linktype::RAW,
    linktype::RAW_OLD,
    linktype::IPV4,
    linktype::IPV6,
    linktype::NULL,
    linktype::LOOP,
    linktype::LINUX_SLL,
    linktype::LINUX_SLL2,
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, frame)) = data.split_first() else {
        return;
    };
    let lt = LINKTYPES[which as usize % LINKTYPES.len()];
    assert_eq!(decode(lt, frame, 7), decode_general(lt, frame, 7));
});
