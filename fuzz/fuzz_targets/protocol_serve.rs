//! The whole serve loop over arbitrary input, against a fresh local tier: it must not
//! panic, and whatever it stored must be intact (every output hashes to its name, every
//! index entry parses and names an output of the right size).
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = Arc::new(sgcache_disk::DiskCache::open(dir.path()).expect("open cache"));
    let metrics = Arc::new(sgcache_types::Metrics::default());
    let server = sgcache::serve::Server::new(
        disk.clone(),
        None,
        Box::new(sgcache_tier::LocalOnly),
        metrics,
    );
    let _ = server.serve(data, std::io::sink());
    let report = disk
        .verify_with_grace(false, Duration::ZERO)
        .expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
});
