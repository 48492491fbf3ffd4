//! `read_from` (Go's `buildid.ReadFile`) on arbitrary bytes, with Go's read size and the
//! small one its tests use, plus the inspect classifiers. Must not panic, hang, or allocate
//! more than the input justifies (run with `-malloc_limit_mb`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz-input");
    let a = sgcache_buildid::read_from(name, data, sgcache_buildid::READ_SIZE);
    let _ = sgcache_buildid::read_from(name, data, 2048);
    let _ = sgcache_buildid::classify(data, data.len() as u64);
    let _ = sgcache_buildid::parse_object_header(data);
    // Whatever ID we read back, hashing the file for it must work too.
    if let Ok(id) = a {
        if !id.is_empty() && id.len() <= sgcache_buildid::DEFAULT_BUF_SIZE {
            let _ = sgcache_buildid::find_and_hash(data, &id, 0).expect("find_and_hash of a read ID");
        }
    }
});
