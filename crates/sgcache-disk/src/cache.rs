//! [`DiskCache`]: open, lookups and index writes. Outputs are written by [`crate::PendingPut`].

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::{Clock, SystemClock, unix_nanos};
use sgcache_types::{ActionId, IndexEntry, OutputId};

use crate::PendingPut;
use crate::entry::{ENTRY_SIZE, MissReason, format_index_entry, parse_index_entry};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::layout;

/// The README the go command writes into a new cache directory (Go 1.26 `default.go`).
pub const README_TEXT: &str =
    "This directory holds cached build artifacts from the Go build system.
Run \"go clean -cache\" if the directory is getting too large.
Run \"go clean -fuzzcache\" to delete the fuzz cache.
See go.dev to learn more about Go.
";

/// Go's `mtimeInterval`: an entry's mtime is refreshed on use only if it is at least this old.
pub(crate) const MTIME_INTERVAL: Duration = Duration::from_secs(3600);

/// A GOCACHE directory. Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Debug, Clone)]
pub struct DiskCache {
    pub(crate) dir: PathBuf,
    pub(crate) clock: Arc<dyn Clock>,
}

impl DiskCache {
    /// Go's `initDefaultCache` + `Open`: creates `dir` (like `mkdir -p`), writes the README if
    /// it is missing (best effort, as in Go), and creates the 256 subdirectories `00`…`ff`.
    /// A relative `dir` is made absolute, so every returned path is absolute.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let cache = Self::open_root(dir)?;
        cache.ensure_subdirs()?;
        Ok(cache)
    }

    /// [`DiskCache::open`] for the serve loop, where startup is on the go command's critical
    /// path: creates the root and README, but the 256 subdirectories only if `ff`, the last
    /// one Go's `Open` creates, is missing (the go command has normally just created them all
    /// in this very directory). Nothing depends on them existing: a put recreates a missing
    /// subdirectory.
    pub fn open_for_serving(dir: impl Into<PathBuf>) -> Result<Self> {
        let cache = Self::open_root(dir)?;
        if !std::fs::metadata(layout::subdir_path(&cache.dir, 0xff)).is_ok_and(|m| m.is_dir()) {
            cache.ensure_subdirs()?;
        }
        Ok(cache)
    }

    /// The root directory and its README, not the subdirectories.
    fn open_root(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir: PathBuf = dir.into();
        let dir = std::path::absolute(&dir).map_err(|e| Error::io("resolve", &dir, e))?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let readme = layout::readme_path(&dir);
        if std::fs::metadata(&readme).is_err() {
            // Best effort, like Go: a read-only cache root still works.
            if let Ok(mut f) = fsutil::create_options(false).open(&readme) {
                let _ = f.write_all(README_TEXT.as_bytes());
            }
        }
        Self::existing_root(dir)
    }

    /// Go's `Open` alone: `dir` must already exist and be a directory; creates the 256
    /// subdirectories.
    pub fn open_existing(dir: impl Into<PathBuf>) -> Result<Self> {
        let cache = Self::existing_root(dir)?;
        cache.ensure_subdirs()?;
        Ok(cache)
    }

    fn existing_root(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir: PathBuf = dir.into();
        let dir = std::path::absolute(&dir).map_err(|e| Error::io("resolve", &dir, e))?;
        let md = std::fs::metadata(&dir).map_err(|e| Error::io("open", &dir, e))?;
        if !md.is_dir() {
            return Err(Error::NotADirectory { path: dir });
        }
        Ok(DiskCache {
            dir,
            clock: Arc::new(SystemClock),
        })
    }

    /// Creates whichever of the 256 `00`–`ff` subdirectories is missing (at open, and after
    /// [`DiskCache::clean`]). Stat first, like Go's `MkdirAll`: one syscall for a directory
    /// that exists.
    pub fn ensure_subdirs(&self) -> Result<()> {
        for i in 0..=255u8 {
            let sub = layout::subdir_path(&self.dir, i);
            if !std::fs::metadata(&sub).is_ok_and(|m| m.is_dir()) {
                std::fs::create_dir_all(&sub)
                    .map_err(|e| Error::io("create directory", &sub, e))?;
            }
        }
        Ok(())
    }

    /// Replaces the clock (tests; the serve loop keeps the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The (absolute) cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The clock in use.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// `<dir>/<xx>/<hex>-a`.
    pub fn action_path(&self, id: &ActionId) -> PathBuf {
        layout::action_path(&self.dir, id)
    }

    /// `<dir>/<xx>/<hex>-d`.
    pub fn output_path(&self, out: &OutputId) -> PathBuf {
        layout::output_path(&self.dir, out)
    }

    /// Go's `DiskCache.get`: reads the `-a` file (one open, one read of up to 176 bytes) and
    /// applies Go's checks; any anomaly is `Ok(None)`. On success the `-a` mtime is refreshed
    /// if it is at least an hour old (Go's `markUsed`).
    ///
    /// Like Go, this does not check that the output exists.
    pub fn get(&self, id: &ActionId) -> Result<Option<IndexEntry>> {
        Ok(self.get_detailed(id).ok())
    }

    /// [`DiskCache::get`] with the reason for a miss (Go's `entryNotFoundError` text); `None`
    /// reason means the `-a` file could not be opened or read.
    pub fn get_detailed(
        &self,
        id: &ActionId,
    ) -> std::result::Result<IndexEntry, Option<MissReason>> {
        let path = self.action_path(id);
        let mut f = File::open(&path).map_err(|_| None)?;
        // fstat first: markUsed needs the mtime anyway, and knowing the size lets a 175-byte
        // file be read with one read(2) instead of read + EOF probe (Go's io.ReadFull).
        let md = f.metadata().ok();
        let mut buf = [0u8; ENTRY_SIZE + 1];
        let stop_at = md.as_ref().map_or(0, |m| m.len());
        let n = fsutil::read_full_until(&mut f, &mut buf, stop_at).map_err(|_| None)?;
        let entry = parse_index_entry(&buf[..n], id).map_err(Some)?;
        if let Some(md) = md {
            self.mark_used_file(&f, &md);
        }
        Ok(entry)
    }

    /// Go's `GetFile` (`Get` + `OutputFile` + stat + size check): returns the entry and the
    /// absolute path of the regular file holding the output. For an executable entry
    /// (`<out>-d/` directory) that is the single file inside; a directory with any other
    /// number of entries is a miss. The `-d` (file or directory) gets Go's hourly `markUsed`.
    ///
    /// Cost on a hit: open + read + fstat of the `-a`, one stat of the `-d` (plus a utimensat
    /// at most hourly). Like Go, the content is not re-hashed here.
    pub fn get_file(&self, id: &ActionId) -> Result<Option<(IndexEntry, PathBuf)>> {
        let Some(entry) = self.get(id)? else {
            return Ok(None);
        };
        Ok(self
            .find_output(&entry.output, entry.size)
            .map(|p| (entry, p)))
    }

    /// Go's `OutputFile` + stat + size check without an index entry: the absolute path of the
    /// file holding output `out` if it exists with exactly `size` bytes (for an executable
    /// entry, the single file inside `<out>-d/`). Marks the `-d` used (hourly rule). Content is
    /// not re-hashed. Useful to skip fetching an output that is already local.
    pub fn find_output(&self, out: &OutputId, size: u64) -> Option<PathBuf> {
        let dpath = self.output_path(out);
        let md = std::fs::metadata(&dpath).ok()?;
        self.mark_used_path(&dpath, &md);
        if md.is_dir() {
            let inner = single_entry(&dpath).ok()?;
            let imd = std::fs::metadata(&inner).ok()?;
            return (imd.is_file() && imd.len() == size).then_some(inner);
        }
        (md.len() == size).then_some(dpath)
    }

    fn needs_mark(&self, md: &std::fs::Metadata) -> Option<SystemTime> {
        let now = self.clock.now();
        let mtime = md.modified().ok()?;
        // Go: now.Sub(mtime) >= mtimeInterval (a future mtime is not refreshed).
        match now.duration_since(mtime) {
            Ok(d) if d >= MTIME_INTERVAL => Some(now),
            _ => None,
        }
    }

    fn mark_used_file(&self, f: &File, md: &std::fs::Metadata) {
        if let Some(now) = self.needs_mark(md) {
            let _ = fsutil::set_times_file(f, now);
        }
    }

    fn mark_used_path(&self, path: &Path, md: &std::fs::Metadata) {
        if let Some(now) = self.needs_mark(md) {
            let _ = fsutil::set_times_path(path, now);
        }
    }

    /// Starts a streaming put of an output with the announced OutputID and size. See
    /// [`PendingPut`].
    pub fn begin_put(&self, out: &OutputId, size: u64) -> Result<PendingPut> {
        PendingPut::begin(self, out, size)
    }

    /// Go's `putIndexEntry`: writes the 175-byte entry `v1 <id> <out> <size> <time_nanos>\n` to
    /// `<id>-a` by opening without `O_TRUNC`, writing, and only then truncating to 175 bytes (a
    /// concurrent identical write never sees an empty file). On a write error the file is
    /// removed. The file's mtime is then the clock's now: set explicitly for a test clock,
    /// by the write itself for the wall clock ([`Clock::is_wall_clock`]).
    ///
    /// `e.time_nanos` is the entry's time: now for a fresh put, or the original put time for
    /// an entry fetched from a remote.
    pub fn put_index_entry(&self, e: &IndexEntry) -> Result<()> {
        let path = self.action_path(&e.action);
        let entry = format_index_entry(e);
        let mut opts = fsutil::create_options(false);
        // Never write through a symlink planted as an `-a` (it could point at any file the
        // user can write); replace the link instead.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NOFOLLOW);
        let mut f = match fsutil::open_recreating_parent(&opts, &path) {
            #[cfg(unix)]
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                let _ = std::fs::remove_file(&path);
                opts.open(&path)
            }
            r => r,
        }
        .map_err(|e| Error::io("open", &path, e))?;
        let r = f
            .write_all(&entry)
            .and_then(|()| f.set_len(entry.len() as u64));
        if let Err(e) = r {
            drop(f);
            let _ = std::fs::remove_file(&path);
            return Err(Error::io("write", &path, e));
        }
        if !self.clock.is_wall_clock() {
            let _ = fsutil::set_times_file(&f, self.clock.now());
        }
        Ok(())
    }

    /// `begin_put` + write + `commit` + `put_index_entry` with the clock's now; returns the
    /// OutputID and the output path.
    pub fn put_bytes(&self, id: &ActionId, data: &[u8]) -> Result<(OutputId, PathBuf)> {
        let out = OutputId::from_bytes(crate::sha256(data));
        let mut p = self.begin_put(&out, data.len() as u64)?;
        p.write_all(data)
            .map_err(|e| Error::io("write", p.temp_path(), e))?;
        let path = p.commit()?;
        self.put_index_entry(&IndexEntry {
            action: *id,
            output: out,
            size: data.len() as u64,
            time_nanos: unix_nanos(self.clock.now()),
        })?;
        Ok((out, path))
    }

    /// What `go clean -cache` removes: every `[0-9a-f][0-9a-f]` entry of the directory (with
    /// everything inside) and `log.txt`. README, trim.txt, testexpire.txt, fuzz/, sgcache/ and
    /// anything else stay. Keeps going after an error and returns the first one. The
    /// subdirectories are not recreated (Go recreates them on the next `Open`).
    pub fn clean(&self) -> Result<()> {
        let rd =
            std::fs::read_dir(&self.dir).map_err(|e| Error::io("read directory", &self.dir, e))?;
        let mut first: Option<Error> = None;
        let mut note = |r: io::Result<bool>, p: &Path| {
            if let Err(e) = r {
                first.get_or_insert_with(|| Error::io("remove", p, e));
            }
        };
        for ent in rd.flatten() {
            let name = ent.file_name();
            if !layout::is_subdir_name(name.as_encoded_bytes()) {
                continue;
            }
            let p = ent.path();
            let is_dir = ent.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let r = if is_dir {
                fsutil::remove_dir_all_quiet(&p)
            } else {
                fsutil::remove_file_quiet(&p)
            };
            note(r, &p);
        }
        let log = self.dir.join("log.txt");
        let r = match std::fs::symlink_metadata(&log) {
            Ok(m) if m.is_dir() => fsutil::remove_dir_all_quiet(&log),
            Ok(_) => fsutil::remove_file_quiet(&log),
            Err(_) => Ok(false),
        };
        note(r, &log);
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The single entry of an executable `-d` directory, or an error describing why there is not
/// exactly one.
pub(crate) fn single_entry(dir: &Path) -> std::result::Result<PathBuf, String> {
    let mut rd = std::fs::read_dir(dir).map_err(|e| format!("cannot read directory: {e}"))?;
    let first = match rd.next() {
        None => return Err("directory is empty".into()),
        Some(Err(e)) => return Err(format!("cannot read directory: {e}")),
        Some(Ok(e)) => e,
    };
    let extra = rd.count();
    if extra > 0 {
        return Err(format!("directory holds {} entries, want 1", extra + 1));
    }
    Ok(first.path())
}

// The serve loop shares one DiskCache (and moves PendingPuts) across threads and tasks.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DiskCache>();
    assert_send_sync::<PendingPut>();
};
