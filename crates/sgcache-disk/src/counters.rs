//! Cumulative per-machine counters in `<dir>/sgcache/stats.json`.
//!
//! Format (JSON object, all values unsigned integers; unknown keys are ignored on read):
//!
//! ```json
//! {"version":1,"gets":10,"hits":7,"misses":3,"puts":3,"put_bytes":4096,"get_bytes":8192,
//!  "extra":{"remote_hits":2}}
//! ```
//!
//! `add_counters` merges under an exclusive flock on `<dir>/sgcache/stats.lock` and replaces
//! `stats.json` by rename, so `read_counters` (no lock) always sees a complete file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{fsutil, layout};

/// Counters. Adding is saturating. Other tiers add their own names to `extra`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Format version (1).
    pub version: u32,
    /// Get requests.
    pub gets: u64,
    /// Get requests answered with a hit.
    pub hits: u64,
    /// Get requests answered with a miss.
    pub misses: u64,
    /// Put requests.
    pub puts: u64,
    /// Bytes received by puts.
    pub put_bytes: u64,
    /// Bytes served by hits.
    pub get_bytes: u64,
    /// Further counters by name (e.g. `remote_hits`), owned by other crates.
    pub extra: BTreeMap<String, u64>,
}

impl Counters {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Counters) {
        self.gets = self.gets.saturating_add(other.gets);
        self.hits = self.hits.saturating_add(other.hits);
        self.misses = self.misses.saturating_add(other.misses);
        self.puts = self.puts.saturating_add(other.puts);
        self.put_bytes = self.put_bytes.saturating_add(other.put_bytes);
        self.get_bytes = self.get_bytes.saturating_add(other.get_bytes);
        for (k, v) in &other.extra {
            let e = self.extra.entry(k.clone()).or_default();
            *e = e.saturating_add(*v);
        }
    }

    /// Adds `n` to the named extra counter.
    pub fn add_extra(&mut self, name: &str, n: u64) {
        let e = self.extra.entry(name.to_owned()).or_default();
        *e = e.saturating_add(n);
    }
}

/// `<dir>/sgcache/stats.json`.
pub fn counters_path(dir: &Path) -> PathBuf {
    layout::state_dir(dir).join("stats.json")
}

/// Reads the counters (all zero if the file does not exist yet).
pub fn read_counters(dir: &Path) -> Result<Counters> {
    let path = counters_path(dir);
    match std::fs::read(&path) {
        Ok(data) => {
            let mut c: Counters =
                serde_json::from_slice(&data).map_err(|source| Error::Counters { path, source })?;
            c.version = 1;
            Ok(c)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Counters {
            version: 1,
            ..Counters::default()
        }),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Adds `delta` to the stored counters under an exclusive lock. A corrupt `stats.json` is
/// replaced (counting restarts from `delta`), so one bad write cannot wedge statistics.
pub fn add_counters(dir: &Path, delta: &Counters) -> Result<()> {
    let state = layout::state_dir(dir);
    std::fs::create_dir_all(&state).map_err(|e| Error::io("create directory", &state, e))?;
    let lock_path = state.join("stats.lock");
    let lock = fsutil::create_options(false)
        .open(&lock_path)
        .map_err(|e| Error::io("open", &lock_path, e))?;
    lock.lock().map_err(|e| Error::io("lock", &lock_path, e))?;
    let mut cur = match read_counters(dir) {
        Ok(c) => c,
        Err(Error::Counters { .. }) => Counters::default(),
        Err(e) => return Err(e),
    };
    cur.merge(delta);
    cur.version = 1;
    let path = counters_path(dir);
    let tmp = state.join(format!("stats.json.tmp-{}", std::process::id()));
    let data = serde_json::to_vec(&cur).map_err(|source| Error::Counters {
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
        let mut d = Counters {
            gets: 2,
            hits: 1,
            misses: 1,
            ..Default::default()
        };
        d.add_extra("remote_hits", 5);
        add_counters(dir.path(), &d).unwrap();
        add_counters(dir.path(), &d).unwrap();
        let c = read_counters(dir.path()).unwrap();
        assert_eq!((c.gets, c.hits, c.misses, c.version), (4, 2, 2, 1));
        assert_eq!(c.extra.get("remote_hits"), Some(&10));
        let raw = std::fs::read_to_string(counters_path(dir.path())).unwrap();
        assert!(raw.contains("\"extra\":{\"remote_hits\":10}"), "{raw}");
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
                            &Counters {
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
