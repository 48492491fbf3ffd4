//! Cumulative per-machine counters in `<dir>/sgcache/stats.json`: every sgcache process adds
//! its [`MetricsSnapshot`] when it ends.
//!
//! Format: one JSON object, the snapshot's fields (unsigned integers) and `"version": 2`;
//! unknown keys are ignored and missing ones read as 0, so files of other versions still read.
//!
//! ```json
//! {"version":2,"gets":10,"hits":7,"hits_remote":2,"misses":3,"puts":3,"put_bytes":4096,…}
//! ```
//!
//! `add_counters` merges under an exclusive flock on `<dir>/sgcache/stats.lock` and replaces
//! `stats.json` by rename, so `read_counters` (no lock) always sees a complete file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sgcache_types::MetricsSnapshot;

use crate::error::{Error, Result};
use crate::{fsutil, layout};

/// The file's format version.
const VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct StatsFile {
    #[serde(default)]
    version: u32,
    #[serde(flatten)]
    counters: MetricsSnapshot,
}

/// `<dir>/sgcache/stats.json`.
pub fn counters_path(dir: &Path) -> PathBuf {
    layout::state_dir(dir).join("stats.json")
}

/// Reads the counters (all zero if the file does not exist yet).
pub fn read_counters(dir: &Path) -> Result<MetricsSnapshot> {
    let path = counters_path(dir);
    match std::fs::read(&path) {
        Ok(data) => serde_json::from_slice::<StatsFile>(&data)
            .map(|f| f.counters)
            .map_err(|source| Error::Counters { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(MetricsSnapshot::default()),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Adds `delta` to the stored counters under an exclusive lock. A corrupt `stats.json` is
/// replaced (counting restarts from `delta`), so one bad write cannot wedge statistics.
pub fn add_counters(dir: &Path, delta: &MetricsSnapshot) -> Result<()> {
    let state = layout::state_dir(dir);
    std::fs::create_dir_all(&state).map_err(|e| Error::io("create directory", &state, e))?;
    let lock_path = state.join("stats.lock");
    let lock = fsutil::create_options(false)
        .open(&lock_path)
        .map_err(|e| Error::io("open", &lock_path, e))?;
    lock.lock().map_err(|e| Error::io("lock", &lock_path, e))?;
    let mut cur = match read_counters(dir) {
        Ok(c) => c,
        Err(Error::Counters { .. }) => MetricsSnapshot::default(),
        Err(e) => return Err(e),
    };
    cur.merge(delta);
    let path = counters_path(dir);
    let tmp = state.join(format!("stats.json.tmp-{}", std::process::id()));
    let file = StatsFile {
        version: VERSION,
        counters: cur,
    };
    let data = serde_json::to_vec(&file).map_err(|source| Error::Counters {
        path: path.clone(),
        source,
    })?;
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(&data)
        .map_err(|e| Error::io("write", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("rename", &path, e)
    })?;
    drop(lock);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_counters(dir.path()).unwrap().gets, 0);
        let d = MetricsSnapshot {
            gets: 2,
            hits: 1,
            misses: 1,
            remote_hits: 5,
            ..Default::default()
        };
        add_counters(dir.path(), &d).unwrap();
        add_counters(dir.path(), &d).unwrap();
        let c = read_counters(dir.path()).unwrap();
        assert_eq!((c.gets, c.hits, c.misses, c.remote_hits), (4, 2, 2, 10));
        let raw = std::fs::read_to_string(counters_path(dir.path())).unwrap();
        assert!(raw.contains("\"version\":2"), "{raw}");
        assert!(raw.contains("\"remote_hits\":10"), "{raw}");
        // A file of the first version still reads (its own fields).
        std::fs::write(
            counters_path(dir.path()),
            r#"{"version":1,"gets":7,"extra":{"remote_hits":3}}"#,
        )
        .unwrap();
        assert_eq!(read_counters(dir.path()).unwrap().gets, 7);
        // Corrupt file: read reports it, add starts over.
        std::fs::write(counters_path(dir.path()), "{not json").unwrap();
        assert!(matches!(
            read_counters(dir.path()),
            Err(Error::Counters { .. })
        ));
        add_counters(dir.path(), &d).unwrap();
        assert_eq!(read_counters(dir.path()).unwrap().gets, 2);
    }

    #[test]
    fn concurrent_adds_do_not_lose_updates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().to_path_buf();
        std::thread::scope(|s| {
            for _ in 0..8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..25 {
                        add_counters(
                            p,
                            &MetricsSnapshot {
                                puts: 1,
                                ..Default::default()
                            },
                        )
                        .unwrap();
                    }
                });
            }
        });
        assert_eq!(read_counters(&p).unwrap().puts, 200);
    }
}
