//! `find_and_hash` on arbitrary bytes and IDs: no panics, and the answer must not depend on
//! the buffer size (the property Go's TestFindAndHash checks by sweeping it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&n, rest)) = input.split_first() else { return };
    let Some((&b, rest)) = rest.split_first() else { return };
    let id_len = usize::from(n % 96) + 1;
    if rest.len() < id_len {
        return;
    }
    let (id, data) = rest.split_at(id_len);
    let small = id_len + usize::from(b % 64);
    let default = sgcache_buildid::find_and_hash(data, id, 0).expect("default buffer");
    let small_buf = sgcache_buildid::find_and_hash(data, id, small).expect("small buffer");
    assert_eq!(default, small_buf, "bufSize {small} vs default");
    for w in default.0.windows(2) {
        assert!(w[1] >= w[0] + id.len() as u64, "matches overlap");
    }
});
