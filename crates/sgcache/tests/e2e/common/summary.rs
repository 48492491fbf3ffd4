//! What a run reports: the `SGCACHE_VERBOSE` summary on a go command's stderr. Counters are
//! read from the JSON form (`SGCACHE_VERBOSE=json`), never scraped from the human line.

use std::process::Output;

use sgcache_types::MetricsSnapshot;

/// The sgcache lines (summary, warnings) of a go command's stderr, for failure messages.
pub fn summary(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("sgcache") || l.starts_with("{\"sgcache\""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The counters of every sgcache a go command started (with `SGCACHE_VERBOSE=json`), added
/// up.
pub fn metrics(out: &Output) -> MetricsSnapshot {
    let mut total = MetricsSnapshot::default();
    for l in String::from_utf8_lossy(&out.stderr).lines() {
        if !l.starts_with("{\"sgcache\"") {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("summary {l:?}: {e}"));
        let m: MetricsSnapshot = serde_json::from_value(v["sgcache"]["metrics"].clone())
            .unwrap_or_else(|e| panic!("summary metrics {l:?}: {e}"));
        total.merge(&m);
    }
    total
}

/// One counter of [`metrics`], by its field name (an unknown name fails the test).
pub fn summary_counter(out: &Output, name: &str) -> u64 {
    metrics(out)
        .fields()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no counter named {name}"))
        .value
}

/// The last summary line (human or JSON) in a go command's stderr.
pub fn summary_line(stderr: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|l| l.starts_with("sgcache: ") || l.starts_with("{\"sgcache\""))
        .map(str::to_owned)
}
