//! [`PendingPut`]: the one way outputs (`-d` files) are written.
//!
//! Bytes go to `<dir>/<xx>/<outhex>.tmp-<pid>-<n>` (same directory as the final name, so the
//! rename is atomic; no `-a`/`-d` suffix, so Go's readers and trim ignore it) and are hashed as
//! they are written. `commit` checks size and SHA-256 against what was announced and only then
//! renames the temp file to `<out>-d`. A reader therefore never sees a partial or wrong output
//! under the final name, whatever else is running.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::cache::{DiskCache, single_entry};
use crate::clock::Clock;
use crate::error::{Error, Result};
use sgcache_types::OutputId;

use crate::{fsutil, layout};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An output being written. Implements [`std::io::Write`]; finish with [`PendingPut::commit`].
/// Dropping it without committing aborts the put and removes the temp file.
pub struct PendingPut {
    file: Option<BufWriter<File>>,
    temp: PathBuf,
    final_path: PathBuf,
    out: OutputId,
    expected: u64,
    written: u64,
    hasher: Sha256,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PendingPut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingPut")
            .field("temp", &self.temp)
            .field("final_path", &self.final_path)
            .field("expected", &self.expected)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl PendingPut {
    pub(crate) fn begin(cache: &DiskCache, out: &OutputId, size: u64) -> Result<Self> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = layout::temp_path(&cache.dir, out, std::process::id(), n);
        // create_new: a stale temp of a crashed process with our pid and counter is not reused.
        let opts = fsutil::create_options(true);
        let file = match fsutil::open_recreating_parent(&opts, &temp) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&temp);
                opts.open(&temp)
            }
            r => r,
        }
        .map_err(|e| Error::io("create", &temp, e))?;
        Ok(PendingPut {
            // No bigger than the output: most are a few KiB (a prefetch writes ~1200 of them).
            file: Some(BufWriter::with_capacity(
                size.clamp(4 << 10, 128 << 10) as usize,
                file,
            )),
            temp,
            final_path: cache.output_path(out),
            out: *out,
            expected: size,
            written: 0,
            hasher: Sha256::new(),
            clock: cache.clock.clone(),
        })
    }

    /// The temp file being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The `<out>-d` path this put commits to.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Checks size and SHA-256 against the announced values, then makes the output visible.
    ///
    /// * Mismatch: the temp file is removed and [`Error::SizeMismatch`] /
    ///   [`Error::HashMismatch`] is returned; nothing is left behind.
    /// * `<out>-d` already a regular file of the right size and content (Go's `copyFile`
    ///   re-hash rule): the temp file is dropped and the existing file is left untouched,
    ///   mtime included (Go does the same).
    /// * `<out>-d` is a directory (an executable entry from the go command): left alone; its
    ///   single file is returned if it has the right size, else
    ///   [`Error::InvalidExecutableEntry`].
    /// * Otherwise (missing, wrong size or corrupt): the temp file gets the clock's now as
    ///   mtime (with the wall clock, by being written) and is renamed over `<out>-d` (atomic
    ///   replace).
    ///
    /// Returns the absolute path of the file holding the output.
    pub fn commit(mut self) -> Result<PathBuf> {
        let Some(buf) = self.file.take() else {
            return Err(Error::io(
                "commit",
                &self.temp,
                io::Error::other("already finished"),
            ));
        };
        let file = match buf.into_inner() {
            Ok(f) => f,
            Err(e) => {
                let err = Error::io("write", &self.temp, e.into_error());
                self.discard();
                return Err(err);
            }
        };
        if self.written != self.expected {
            drop(file);
            self.discard();
            return Err(Error::SizeMismatch {
                out: self.out.hex(),
                expected: self.expected,
                got: self.written,
            });
        }
        let got: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if &got != self.out.as_bytes() {
            drop(file);
            self.discard();
            return Err(Error::HashMismatch {
                expected: self.out.hex(),
                got: hex::encode(got),
            });
        }

        match std::fs::metadata(&self.final_path) {
            Ok(md) if md.is_dir() => {
                drop(file);
                self.discard();
                let inner = single_entry(&self.final_path).map_err(|reason| {
                    Error::InvalidExecutableEntry {
                        path: self.final_path.clone(),
                        reason,
                    }
                })?;
                return match std::fs::metadata(&inner) {
                    Ok(m) if m.is_file() && m.len() == self.expected => Ok(inner),
                    Ok(m) => Err(Error::InvalidExecutableEntry {
                        path: self.final_path.clone(),
                        reason: format!(
                            "`{}` has {} bytes, want {}",
                            inner.display(),
                            m.len(),
                            self.expected
                        ),
                    }),
                    Err(e) => Err(Error::io("stat", inner, e)),
                };
            }
            Ok(md)
                if md.is_file()
                    && md.len() == self.expected
                    && crate::file_hash(&self.final_path).ok() == Some(self.out.to_bytes()) =>
            {
                // Already present and valid (Go's copyFile rule): keep it, mtime included.
                drop(file);
                self.discard();
                return Ok(std::mem::take(&mut self.final_path));
            }
            _ => {}
        }

        // The output appears with the clock's now as its mtime (rename keeps the temp file's).
        // With the wall clock the last write already set it (see `Clock::is_wall_clock`).
        if !self.clock.is_wall_clock() {
            let _ = fsutil::set_times_file(&file, self.clock.now());
        }
        drop(file);
        // Fails with NotFound if `go clean -cache` removed the subdirectory (and our temp file)
        // under us; the put is then reported as failed, which the go command tolerates.
        if let Err(e) = std::fs::rename(&self.temp, &self.final_path) {
            let err = Error::io("rename", &self.final_path, e);
            self.discard();
            return Err(err);
        }
        // The temp name is gone now; make Drop a no-op.
        self.temp = PathBuf::new();
        Ok(std::mem::take(&mut self.final_path))
    }

    fn discard(&mut self) {
        self.file = None;
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
            self.temp = PathBuf::new();
        }
    }
}

impl Write for PendingPut {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(f) = self.file.as_mut() else {
            return Err(io::Error::other("put already finished"));
        };
        let n = f.write(data)?;
        self.hasher.update(&data[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for PendingPut {
    fn drop(&mut self) {
        self.discard();
    }
}
