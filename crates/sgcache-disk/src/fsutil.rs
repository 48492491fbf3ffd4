//! Small file-system helpers shared by the modules that write.

use std::fs::{File, FileTimes, OpenOptions};
use std::io::{self, Read};
use std::path::Path;
use std::time::SystemTime;

/// Sets atime and mtime of an open file (Go's `os.Chtimes(file, now, now)`).
pub(crate) fn set_times_file(f: &File, t: SystemTime) -> io::Result<()> {
    f.set_times(FileTimes::new().set_accessed(t).set_modified(t))
}

/// Sets atime and mtime of a path without opening it (works for directories too).
#[cfg(unix)]
pub(crate) fn set_times_path(path: &Path, t: SystemTime) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let n = crate::clock::unix_nanos(t);
    let ts = libc::timespec {
        tv_sec: n.div_euclid(1_000_000_000) as libc::time_t,
        tv_nsec: n.rem_euclid(1_000_000_000) as _,
    };
    let times = [ts, ts];
    // SAFETY: `c` is a valid NUL-terminated string and `times` points to two timespecs.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets atime and mtime of a path without opening it.
#[cfg(not(unix))]
pub(crate) fn set_times_path(path: &Path, t: SystemTime) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    set_times_file(&f, t)
}

/// Options for creating a cache file with Go's permissions (0o666 before umask).
pub(crate) fn create_options(create_new: bool) -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true);
    if create_new {
        o.create_new(true);
    } else {
        o.create(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o666);
    }
    o
}

/// Opens `path` with `opts`; if its parent directory is missing (a `go clean -cache` ran while
/// we were open), recreates the parent (0o777, like Go's `Open`) and retries once.
///
/// For an entry or temp file (`<64 hex>-a`, `-d`, `.tmp-…`), the parent is one of the 256
/// subdirectories, and it must be a real directory: a symlink planted in its place (by anyone
/// who can write the cache root) is refused, so sgcache never creates files elsewhere through
/// it. The cache root itself may be a symlink; that is the user's choice.
pub(crate) fn open_recreating_parent(opts: &OpenOptions, path: &Path) -> io::Result<File> {
    let is_entry = path.file_name().is_some_and(|n| {
        let n = n.as_encoded_bytes();
        crate::layout::is_go_entry_name(n) || crate::layout::is_temp_name(n)
    });
    if is_entry
        && let Some(parent) = path.parent()
        && std::fs::symlink_metadata(parent).is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "cache subdirectory `{}` is a symlink; not writing through it",
                parent.display()
            ),
        ));
    }
    match opts.open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            opts.open(path)
        }
        r => r,
    }
}

/// Reads up to `buf.len()` bytes, like Go's `io.ReadFull` (returns the count read).
pub(crate) fn read_full(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// [`read_full`] that also stops once `known_len` (> 0) bytes are in, saving the EOF probe when
/// the size is known from fstat. A file growing concurrently still yields the extra bytes of
/// the first read, so "too long" is detected as reliably as with `io.ReadFull`.
pub(crate) fn read_full_until(
    f: &mut impl Read,
    buf: &mut [u8],
    known_len: u64,
) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if known_len > 0 && n as u64 == known_len {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether a lock error means "this file system has no locking" (Go: `errors.ErrUnsupported`,
/// i.e. ENOSYS / ENOTSUP / EOPNOTSUPP).
pub(crate) fn is_lock_unsupported(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::Unsupported {
        return true;
    }
    #[cfg(unix)]
    if let Some(code) = e.raw_os_error() {
        return code == libc::ENOSYS || code == libc::ENOTSUP || code == libc::EOPNOTSUPP;
    }
    false
}

/// Sum of the sizes of the regular files directly inside `dir` (an executable entry).
pub(crate) fn dir_content_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::metadata(e.path()).ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Removes a file, treating "already gone" as success (another trim got there first).
pub(crate) fn remove_file_quiet(path: &Path) -> io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes a directory tree, treating "already gone" as success.
pub(crate) fn remove_dir_all_quiet(path: &Path) -> io::Result<bool> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
