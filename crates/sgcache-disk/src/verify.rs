//! [`DiskCache::verify`]: an integrity check of the whole cache, safe to run while go commands
//! use the directory.
//!
//! What counts as corruption: a `-d` whose content does not hash to its name; an executable
//! `-d/` directory with other than one entry (or whose file does not hash to the name); a
//! malformed `-a` (any of `get`'s miss rules, including a name/content id mismatch); an `-a`
//! whose size disagrees with its existing, valid `-d`. An `-a` whose `-d` is missing is a
//! normal miss, not corruption.
//!
//! Why repair cannot remove valid data: anything modified within [`VERIFY_GRACE`] of now is
//! skipped (the go command writes `-d` files in place, and a file being written looks corrupt
//! until its last byte lands); right before removing, the file is checked again and must still
//! be bad with an unchanged mtime.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use crate::cache::{DiskCache, single_entry};
use crate::entry::{ENTRY_SIZE, parse_index_entry};
use crate::error::Result;
use crate::layout::{self, EntryKind};
use sgcache_types::{ActionId, IndexEntry};

use crate::fsutil;

type Id = [u8; 32];

/// Files modified this recently are not judged (they may be writes in progress).
pub const VERIFY_GRACE: Duration = Duration::from_secs(5 * 60);

/// Kind of problem found by verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// A `-d` file (or the file of an executable entry) does not hash to its name.
    CorruptOutput,
    /// An executable `-d/` directory that does not hold exactly one file.
    InvalidExecutable,
    /// An `-a` file that `get` would reject.
    MalformedAction,
    /// An `-a` whose size differs from the size of its (valid) `-d`.
    SizeMismatch,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// The file or directory that is wrong (and that `repair` removes).
    pub path: PathBuf,
    /// Human-readable detail (one line).
    pub detail: String,
    /// Whether repair removed it.
    pub removed: bool,
}

/// Result of [`DiskCache::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// `-a` files checked.
    pub actions_checked: u64,
    /// `-d` regular files hashed.
    pub outputs_checked: u64,
    /// Executable entries checked.
    pub executables_checked: u64,
    /// Bytes hashed.
    pub bytes_hashed: u64,
    /// `-a` entries whose `-d` is missing (normal misses, not problems).
    pub dangling_actions: u64,
    /// Entries skipped because they were modified within [`VERIFY_GRACE`].
    pub skipped_recent: u64,
    /// Empty `-a` files: a write torn by a kill between `open` and `write`. A miss for Go
    /// (and for sgcache), rewritten by the next put; not corruption. `repair` removes them.
    pub empty_actions: u64,
    /// Problems found.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Found {
    id: Id,
    path: PathBuf,
    mtime: SystemTime,
    is_dir: bool,
}

/// Outcome of checking one output.
enum OutCheck {
    /// Valid, with this content size.
    Ok(u64),
    Bad(ProblemKind, String),
    Unreadable,
}

fn check_output(f: &Found) -> (OutCheck, u64) {
    let file = if f.is_dir {
        match single_entry(&f.path) {
            Ok(p) => p,
            Err(reason) => return (OutCheck::Bad(ProblemKind::InvalidExecutable, reason), 0),
        }
    } else {
        f.path.clone()
    };
    let Ok(md) = std::fs::metadata(&file) else {
        return (OutCheck::Unreadable, 0);
    };
    if !md.is_file() {
        return (
            OutCheck::Bad(
                ProblemKind::InvalidExecutable,
                format!("`{}` is not a regular file", file.display()),
            ),
            0,
        );
    }
    match crate::file_hash(&file) {
        Ok(h) if h == f.id => (OutCheck::Ok(md.len()), md.len()),
        Ok(h) => (
            OutCheck::Bad(
                ProblemKind::CorruptOutput,
                format!(
                    "content of `{}` hashes to {}",
                    file.display(),
                    hex::encode(h)
                ),
            ),
            md.len(),
        ),
        Err(_) => (OutCheck::Unreadable, 0),
    }
}

fn mtime_of(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl DiskCache {
    /// Rehashes every output (and every executable entry's file) against its name and parses
    /// every `-a` entry; reports problems and, with `repair`, removes what is corrupt. See the
    /// module docs for what counts as corruption and why repair is safe alongside go commands.
    /// Outputs are hashed on several threads.
    pub fn verify(&self, repair: bool) -> Result<VerifyReport> {
        self.verify_with_grace(repair, VERIFY_GRACE)
    }

    /// [`DiskCache::verify`] with another grace period. `Duration::ZERO` judges every file,
    /// which is right only when nothing is writing to the directory (e.g. after a test).
    pub fn verify_with_grace(&self, repair: bool, grace: Duration) -> Result<VerifyReport> {
        let now = self.clock.now();
        let recent = |m: SystemTime| {
            !grace.is_zero() && now.duration_since(m).map(|d| d < grace).unwrap_or(true)
        };
        let mut report = VerifyReport::default();
        let mut outputs = Vec::new();
        let mut actions = Vec::new();
        for (name, path) in crate::walk::entries(&self.dir) {
            let Some((id, kind)) = layout::parse_entry_name(name.as_encoded_bytes()) else {
                continue;
            };
            let Ok(md) = std::fs::metadata(&path) else {
                continue;
            };
            let Ok(mtime) = md.modified() else { continue };
            if recent(mtime) {
                report.skipped_recent += 1;
                continue;
            }
            let f = Found {
                id,
                path,
                mtime,
                is_dir: md.is_dir(),
            };
            match kind {
                EntryKind::Output => outputs.push(f),
                EntryKind::Action => actions.push(f),
            }
        }

        // Phase 1: hash outputs in parallel.
        let results: Vec<Mutex<Option<(OutCheck, u64)>>> =
            outputs.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(f) = outputs.get(i) else { break };
                        let r = check_output(f);
                        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    }
                });
            }
        });
        let mut valid_sizes: std::collections::HashMap<Id, u64> = std::collections::HashMap::new();
        let mut bad_outputs: std::collections::HashSet<Id> = std::collections::HashSet::new();
        for (f, r) in outputs.iter().zip(results) {
            let Some((check, hashed)) = r.into_inner().unwrap_or_else(|e| e.into_inner()) else {
                continue;
            };
            report.bytes_hashed += hashed;
            if f.is_dir {
                report.executables_checked += 1;
            } else {
                report.outputs_checked += 1;
            }
            match check {
                OutCheck::Ok(size) => {
                    valid_sizes.insert(f.id, size);
                }
                OutCheck::Unreadable => {}
                OutCheck::Bad(kind, detail) => {
                    bad_outputs.insert(f.id);
                    let removed = repair && self.repair_output(f);
                    report.problems.push(Problem {
                        kind,
                        path: f.path.clone(),
                        detail,
                        removed,
                    });
                }
            }
        }

        // Phase 2: index entries.
        for f in &actions {
            report.actions_checked += 1;
            let entry = match read_action(&f.path, &f.id) {
                Ok(e) => e,
                Err(None) => continue, // vanished or unreadable
                // An empty `-a` is a write torn between `open` and `write` (a killed go
                // command or sgcache). Go reads it as a miss and the next put rewrites it.
                Err(Some(_)) if std::fs::metadata(&f.path).is_ok_and(|m| m.len() == 0) => {
                    report.empty_actions += 1;
                    if repair {
                        self.repair_action(f, |p| std::fs::metadata(p).is_ok_and(|m| m.len() == 0));
                    }
                    continue;
                }
                Err(Some(detail)) => {
                    let removed = repair
                        && self.repair_action(f, |p| {
                            read_action(p, &f.id).is_err_and(|e| e.is_some())
                        });
                    report.problems.push(Problem {
                        kind: ProblemKind::MalformedAction,
                        path: f.path.clone(),
                        detail,
                        removed,
                    });
                    continue;
                }
            };
            let out = entry.output;
            if let Some(&size) = valid_sizes.get(out.as_bytes()) {
                if size != entry.size {
                    let detail = format!(
                        "entry says output {} has {} bytes, the valid output has {size}",
                        out.hex(),
                        entry.size
                    );
                    let removed = repair
                        && self.repair_action(f, |p| {
                            read_action(p, &f.id).is_ok_and(|e| e.output == out && e.size != size)
                        });
                    report.problems.push(Problem {
                        kind: ProblemKind::SizeMismatch,
                        path: f.path.clone(),
                        detail,
                        removed,
                    });
                }
            } else if !bad_outputs.contains(out.as_bytes())
                && std::fs::symlink_metadata(self.output_path(&out)).is_err()
            {
                report.dangling_actions += 1;
            }
        }
        Ok(report)
    }

    /// Removes a corrupt output after checking again that it is still bad and unchanged.
    fn repair_output(&self, f: &Found) -> bool {
        if mtime_of(&f.path) != Some(f.mtime) {
            return false;
        }
        if !matches!(check_output(f).0, OutCheck::Bad(..)) || mtime_of(&f.path) != Some(f.mtime) {
            return false;
        }
        let r = if f.is_dir {
            fsutil::remove_dir_all_quiet(&f.path)
        } else {
            fsutil::remove_file_quiet(&f.path)
        };
        r.unwrap_or(false)
    }

    fn repair_action(&self, f: &Found, still_bad: impl Fn(&Path) -> bool) -> bool {
        if mtime_of(&f.path) != Some(f.mtime) || !still_bad(&f.path) {
            return false;
        }
        fsutil::remove_file_quiet(&f.path).unwrap_or(false)
    }
}

/// Reads and parses an `-a` file. `Err(None)`: could not read; `Err(Some(reason))`: malformed.
fn read_action(path: &Path, id: &Id) -> std::result::Result<IndexEntry, Option<String>> {
    let mut f = std::fs::File::open(path).map_err(|_| None)?;
    let mut buf = [0u8; ENTRY_SIZE + 1];
    let n = fsutil::read_full(&mut f, &mut buf).map_err(|_| None)?;
    parse_index_entry(&buf[..n], &ActionId::from_bytes(*id)).map_err(|r| Some(r.to_string()))
}
