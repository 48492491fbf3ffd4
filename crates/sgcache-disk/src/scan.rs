//! [`DiskCache::scan`]: one pass over the 256 subdirectories for statistics, with a callback
//! per item so callers can classify outputs (package archive, executable, …) by reading their
//! headers. Read-only: it never changes mtimes.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::cache::{DiskCache, single_entry};
use crate::error::Result;
use crate::layout::{self, EntryKind};

/// Kind of a scanned item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanKind {
    /// `<id>-a` index entry.
    Action,
    /// `<out>-d` regular file.
    Output,
    /// `<out>-d/<exe>`: the item's path is the inner file, its size the inner file's size.
    Executable,
    /// sgcache temp file of a put in progress (or abandoned).
    Temp,
    /// Anything else inside a subdirectory (including `-a`/`-d` names that are not 64 hex).
    Other,
}

/// One scanned item.
#[derive(Debug, Clone)]
pub struct ScanItem {
    /// What it is.
    pub kind: ScanKind,
    /// The ActionID / OutputID from the name (None for temp and other files).
    pub id: Option<[u8; 32]>,
    /// Absolute path (for executables: the file inside the `-d` directory).
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (for executables: of the `-d` directory, which markUsed refreshes).
    pub mtime: Option<SystemTime>,
}

/// Totals of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// `-a` files.
    pub actions: u64,
    /// `-d` regular files.
    pub outputs: u64,
    /// `-d` directories (executable entries).
    pub executables: u64,
    /// sgcache temp files.
    pub temp_files: u64,
    /// Other names.
    pub other: u64,
    /// Sum of the sizes of all `-a`, `-d` and executable files.
    pub total_bytes: u64,
    /// Bytes in `-a` files.
    pub action_bytes: u64,
    /// Bytes in outputs (regular and executable).
    pub output_bytes: u64,
    /// Oldest mtime among `-a`/`-d`.
    pub oldest: Option<SystemTime>,
    /// Newest mtime among `-a`/`-d`.
    pub newest: Option<SystemTime>,
}

impl DiskCache {
    /// Walks every subdirectory and calls `f` once per item (in no particular order), then
    /// returns the totals. Entries that vanish or cannot be read while scanning are skipped
    /// (the cache changes underfoot; `go clean -cache` may even remove whole subdirectories),
    /// so this currently never fails; the `Result` is kept for future checks.
    pub fn scan(&self, mut f: impl FnMut(&ScanItem)) -> Result<ScanSummary> {
        let mut s = ScanSummary::default();
        for (name, path) in crate::walk::entries(&self.dir) {
            let nb = name.as_encoded_bytes();
            let Ok(md) = std::fs::metadata(&path) else {
                continue;
            };
            let mtime = md.modified().ok();
            let parsed = layout::parse_entry_name(nb);
            let item = match parsed {
                Some((id, EntryKind::Action)) if md.is_file() => {
                    s.actions += 1;
                    s.action_bytes += md.len();
                    ScanItem {
                        kind: ScanKind::Action,
                        id: Some(id),
                        path,
                        size: md.len(),
                        mtime,
                    }
                }
                Some((id, EntryKind::Output)) if md.is_file() => {
                    s.outputs += 1;
                    s.output_bytes += md.len();
                    ScanItem {
                        kind: ScanKind::Output,
                        id: Some(id),
                        path,
                        size: md.len(),
                        mtime,
                    }
                }
                Some((id, EntryKind::Output)) if md.is_dir() => {
                    s.executables += 1;
                    let (inner, size) = match single_entry(&path) {
                        Ok(p) => {
                            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                            (p, size)
                        }
                        Err(_) => (path.clone(), crate::fsutil::dir_content_size(&path)),
                    };
                    s.output_bytes += size;
                    ScanItem {
                        kind: ScanKind::Executable,
                        id: Some(id),
                        path: inner,
                        size,
                        mtime,
                    }
                }
                _ if layout::is_temp_name(nb) => {
                    s.temp_files += 1;
                    ScanItem {
                        kind: ScanKind::Temp,
                        id: None,
                        path,
                        size: md.len(),
                        mtime,
                    }
                }
                _ => {
                    s.other += 1;
                    ScanItem {
                        kind: ScanKind::Other,
                        id: None,
                        path,
                        size: md.len(),
                        mtime,
                    }
                }
            };
            if matches!(
                item.kind,
                ScanKind::Action | ScanKind::Output | ScanKind::Executable
            ) {
                s.total_bytes += item.size;
                if let Some(m) = mtime {
                    s.oldest = Some(s.oldest.map_or(m, |o| o.min(m)));
                    s.newest = Some(s.newest.map_or(m, |o| o.max(m)));
                }
            }
            f(&item);
        }
        Ok(s)
    }
}
