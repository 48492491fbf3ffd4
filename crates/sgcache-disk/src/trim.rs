//! Trim: Go's age-based eviction (`DiskCache.Trim`, Go 1.26 semantics) plus an optional size
//! cap.
//!
//! Go 1.26 order (cache.go): read `trim.txt` under a shared flock and skip if the last trim was
//! less than 24h ago (and not more than 1h in the future); otherwise, under an exclusive flock,
//! re-check and **stamp `trim.txt` first** (so parallel go commands do not all trim,
//! golang/go#76314), then scan the 256 subdirectories without any lock, removing every `-a`/`-d`
//! whose mtime is before `now - 5d - 1h` (directories with `RemoveAll`). Only an unsupported
//! lock is returned as an error; other `trim.txt` failures do not stop the scan (Go ignores
//! them), and are reported in [`TrimReport::stamp_error`].

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::cache::{DiskCache, MTIME_INTERVAL};
use crate::clock::{signed_diff_nanos, unix_secs};
use crate::error::{Error, Result};
use crate::{fsutil, layout};

/// Go's `trimInterval`.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Go's `trimLimit`.
pub const TRIM_LIMIT: Duration = Duration::from_secs(5 * 24 * 3600);
/// Age after which an abandoned sgcache temp file is removed.
pub const TEMP_MAX_AGE: Duration = Duration::from_secs(3600);

/// The size cap never removes an entry used more recently than this: mtimes are refreshed
/// at most once per [`MTIME_INTERVAL`] (1 h), plus an hour of margin.
pub const SIZE_TRIM_MIN_AGE: Duration = Duration::from_secs(2 * 3600);

/// Options for [`DiskCache::trim`].
#[derive(Debug, Clone, Default)]
pub struct TrimOptions {
    /// Remove entries unused for longer than this; default Go's cutoff, 5 days + 1 hour.
    pub max_age: Option<Duration>,
    /// After the age pass, remove least-recently-used entries until the total size of all
    /// `-a`/`-d` (executable directories counted by content) is at most this many bytes.
    pub max_size: Option<u64>,
}

/// What a trim did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrimReport {
    /// Whether the scan ran (false: `trim.txt` said a trim happened recently).
    pub ran: bool,
    /// `-a`/`-d` entries removed.
    pub removed_entries: u64,
    /// Bytes of the removed entries.
    pub removed_bytes: u64,
    /// Abandoned sgcache temp files removed.
    pub removed_temp_files: u64,
    /// `-a`/`-d` entries left.
    pub kept_entries: u64,
    /// Bytes of the entries left.
    pub kept_bytes: u64,
    /// Entries that could not be removed (permission errors, …).
    pub remove_errors: u64,
    /// Writing `trim.txt` failed (the scan still ran, as in Go).
    pub stamp_error: Option<String>,
}

struct Item {
    path: PathBuf,
    mtime: SystemTime,
    is_action: bool,
    is_dir: bool,
    bytes: u64,
}

/// Parses trim.txt like Go (`strconv.ParseInt(strings.TrimSpace(data))`) and decides whether a
/// trim is unnecessary: `d = now - last` with `-1h < d < 24h`.
fn skip_trim(data: &[u8], now: SystemTime) -> bool {
    let Ok(s) = std::str::from_utf8(data) else {
        return false;
    };
    let s = s.trim();
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let Ok(t) = s.parse::<i64>() else {
        return false;
    };
    let last = i128::from(t) * 1_000_000_000;
    let d = i128::from(crate::clock::unix_nanos(now)) - last;
    d < TRIM_INTERVAL.as_nanos() as i128 && d > -(MTIME_INTERVAL.as_nanos() as i128)
}

enum Stamp {
    Written,
    /// Another process trimmed in the meantime.
    Skipped,
}

/// `lockedfile.Read`: the content under a shared lock.
fn read_locked(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    f.lock_shared()?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

/// `lockedfile.Transform` of trim.txt: exclusive lock, optional re-check, write `"%d"` with
/// Go's ordering (grow: tail first; shrink: write then truncate).
fn stamp(
    path: &Path,
    now: SystemTime,
    recheck: bool,
) -> std::result::Result<Stamp, (bool, std::io::Error)> {
    let mut f = fsutil::open_recreating_parent(fsutil::create_options(false).read(true), path)
        .map_err(|e| (false, e))?;
    f.lock().map_err(|e| (fsutil::is_lock_unsupported(&e), e))?;
    let mut old = Vec::new();
    f.read_to_end(&mut old).map_err(|e| (false, e))?;
    if recheck && skip_trim(&old, now) {
        return Ok(Stamp::Skipped);
    }
    let new = unix_secs(now).to_string().into_bytes();
    let w = (|| -> std::io::Result<()> {
        if new.len() > old.len() {
            f.seek(SeekFrom::Start(old.len() as u64))?;
            f.write_all(&new[old.len()..])?;
            f.seek(SeekFrom::Start(0))?;
            f.write_all(&new[..old.len()])?;
        } else {
            f.seek(SeekFrom::Start(0))?;
            f.write_all(&new)?;
            f.set_len(new.len() as u64)?;
        }
        Ok(())
    })();
    w.map(|()| Stamp::Written).map_err(|e| (false, e))
}

impl DiskCache {
    /// Go's `Trim` (run by every go command at exit): at most once per 24h, removes entries
    /// unused for 5 days + 1 hour. Also removes sgcache temp files older than an hour.
    pub fn trim_if_due(&self) -> Result<TrimReport> {
        self.trim_if_due_with(&TrimOptions::default())
    }

    /// [`DiskCache::trim_if_due`] with options applied in the same single scan when a trim is
    /// due: `max_age` replaces Go's 5d+1h cutoff and `max_size` enforces a size cap (LRU, as in
    /// [`DiskCache::trim`]). With default options this is exactly Go's trim.
    pub fn trim_if_due_with(&self, opts: &TrimOptions) -> Result<TrimReport> {
        let now = self.clock.now();
        let path = layout::trim_txt_path(&self.dir);
        if let Ok(data) = read_locked(&path)
            && skip_trim(&data, now)
        {
            return Ok(TrimReport::default());
        }
        let mut report = TrimReport::default();
        match stamp(&path, now, true) {
            Ok(Stamp::Skipped) => return Ok(report),
            Ok(Stamp::Written) => {}
            Err((true, source)) => return Err(Error::LockUnsupported { path, source }),
            Err((false, e)) => report.stamp_error = Some(format!("`{}`: {e}", path.display())),
        }
        let max_age = opts.max_age.unwrap_or(TRIM_LIMIT + MTIME_INTERVAL);
        let cutoff = now.checked_sub(max_age).unwrap_or(SystemTime::UNIX_EPOCH);
        self.trim_pass(now, cutoff, opts.max_size, &mut report);
        Ok(report)
    }

    /// An explicit trim (`sgcache trim`): always runs, stamps `trim.txt` like Go, removes
    /// entries older than `max_age` (default Go's 5d+1h), then enforces `max_size` by removing
    /// least-recently-used entries (oldest mtime first; at equal mtime `-a` before `-d`).
    pub fn trim(&self, opts: &TrimOptions) -> Result<TrimReport> {
        let now = self.clock.now();
        let path = layout::trim_txt_path(&self.dir);
        let mut report = TrimReport::default();
        match stamp(&path, now, false) {
            Ok(_) => {}
            Err((true, source)) => return Err(Error::LockUnsupported { path, source }),
            Err((false, e)) => report.stamp_error = Some(format!("`{}`: {e}", path.display())),
        }
        let max_age = opts.max_age.unwrap_or(TRIM_LIMIT + MTIME_INTERVAL);
        let cutoff = now.checked_sub(max_age).unwrap_or(SystemTime::UNIX_EPOCH);
        self.trim_pass(now, cutoff, opts.max_size, &mut report);
        Ok(report)
    }

    fn trim_pass(
        &self,
        now: SystemTime,
        cutoff: SystemTime,
        max_size: Option<u64>,
        report: &mut TrimReport,
    ) {
        report.ran = true;
        let mut kept: Vec<Item> = Vec::new();
        // The walk reads a subdirectory's names before yielding any (as Go does), so
        // removing what it yields is safe.
        for (name, path) in crate::walk::entries(&self.dir) {
            let nb = name.as_encoded_bytes();
            if layout::is_go_entry_name(nb) {
                // os.Stat follows symlinks.
                let Ok(md) = std::fs::metadata(&path) else {
                    continue;
                };
                let Ok(mtime) = md.modified() else { continue };
                let is_dir = md.is_dir();
                let bytes = if is_dir {
                    fsutil::dir_content_size(&path)
                } else {
                    md.len()
                };
                let item = Item {
                    path,
                    mtime,
                    is_action: nb.ends_with(b"-a"),
                    is_dir,
                    bytes,
                };
                if mtime < cutoff {
                    remove_item(&item, report);
                } else {
                    kept.push(item);
                }
            } else if layout::is_temp_name(nb) {
                let Ok(md) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                let old = md
                    .modified()
                    .map(|m| signed_diff_nanos(now, m) > TEMP_MAX_AGE.as_nanos() as i128)
                    .unwrap_or(false);
                if old && md.is_file() && fsutil::remove_file_quiet(&path).unwrap_or(false) {
                    report.removed_temp_files += 1;
                }
            }
        }
        let mut total: u64 = kept.iter().map(|k| k.bytes).sum();
        if let Some(max) = max_size
            && total > max
        {
            kept.sort_by(|a, b| a.mtime.cmp(&b.mtime).then(b.is_action.cmp(&a.is_action)));
            let mut rest = Vec::new();
            let mut iter = kept.into_iter();
            // Never evict what may be in use: an mtime is refreshed at most hourly, so an
            // entry a go command was handed minutes ago can look up to an hour old. Items
            // are sorted oldest first, so the first recent one ends the pass (the cap may
            // then not be met; `kept_bytes` says by how much).
            let recent = now
                .checked_sub(SIZE_TRIM_MIN_AGE)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            for item in iter.by_ref() {
                if total <= max || item.mtime > recent {
                    rest.push(item);
                    break;
                }
                // Re-stat: if another process used it since our scan, it is no longer LRU.
                let still_old = std::fs::metadata(&item.path)
                    .and_then(|m| m.modified())
                    .map(|m| m <= item.mtime)
                    .unwrap_or(false);
                if still_old {
                    total -= item.bytes;
                    remove_item(&item, report);
                } else {
                    rest.push(item);
                }
            }
            rest.extend(iter);
            kept = rest;
        }
        report.kept_entries = kept.len() as u64;
        report.kept_bytes = total;
    }
}

fn remove_item(item: &Item, report: &mut TrimReport) {
    let r = if item.is_dir {
        fsutil::remove_dir_all_quiet(&item.path)
    } else {
        fsutil::remove_file_quiet(&item.path)
    };
    match r {
        Ok(true) => {
            report.removed_entries += 1;
            report.removed_bytes += item.bytes;
        }
        Ok(false) => {}
        Err(_) => report.remove_errors += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn skip_rule() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(skip_trim(b"1000000", now));
        assert!(skip_trim(b" 999000\n", now));
        assert!(!skip_trim(b"913600", now)); // exactly 24h ago
        assert!(skip_trim(b"913601", now));
        assert!(skip_trim(b"1003599", now)); // 59:59 in the future
        assert!(!skip_trim(b"1003600", now)); // 1h in the future
        assert!(!skip_trim(b"", now));
        assert!(!skip_trim(b"abc", now));
        assert!(!skip_trim(b"1_000", now));
        assert!(skip_trim(b"+1000000", now));
    }
}
