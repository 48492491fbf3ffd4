//! Where a daemon listens, and who may use it.
//!
//! ```text
//! $XDG_RUNTIME_DIR/sgcache/        (else /tmp/sgcache-<uid>/), mode 0700, ours
//!   <16 hex of config hash>.sock   the daemon's socket
//!   <16 hex of config hash>.lock   flock(2)ed by the daemon for its whole life
//!   <16 hex of config hash>.log    the daemon's stderr when it was auto-started
//! ```
//!
//! Invariants: the directory is ours and not writable by anyone else (checked before every
//! use, so another user can neither plant a socket we would talk to nor read ours); only
//! the holder of the `.lock` binds or removes the `.sock`, so two daemons racing to start
//! (two `SGCACHE_DAEMON=auto` clients at once) end with one listening and the other exiting,
//! and a stale socket left by a killed daemon is replaced by the next one.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::Error;

/// The longest socket path `sockaddr_un` takes on every Unix (108 on Linux, 104 on macOS).
const SUN_PATH_MAX: usize = 103;

/// The files of one configuration's daemon.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The socket.
    pub sock: PathBuf,
    /// The lock the daemon holds.
    pub lock: PathBuf,
    /// The auto-started daemon's log.
    pub log: PathBuf,
}

/// The endpoint for configuration hash `key`, creating (and checking) the directory.
pub fn endpoint(runtime_dir: Option<&Path>, key: &[u8; 32]) -> Result<Endpoint, Error> {
    // SAFETY: getuid(2) has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = match runtime_dir {
        Some(d) => d.join("sgcache"),
        None => std::env::temp_dir().join(format!("sgcache-{uid}")),
    };
    private_dir(&dir, uid)?;
    let stem = hex::encode(&key[..8]);
    let sock = dir.join(format!("{stem}.sock"));
    if sock.as_os_str().len() > SUN_PATH_MAX {
        return Err(Error::PathTooLong { path: sock });
    }
    Ok(Endpoint {
        lock: dir.join(format!("{stem}.lock")),
        log: dir.join(format!("{stem}.log")),
        sock,
    })
}

/// Creates `dir` with mode 0700 if missing; refuses it unless it is a directory owned by
/// `uid` that nobody else can write.
fn private_dir(dir: &Path, uid: u32) -> Result<(), Error> {
    let io = |source| Error::Io {
        op: "creating",
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let m = std::fs::symlink_metadata(dir).map_err(io)?;
    if !m.is_dir() || m.uid() != uid || m.mode() & 0o022 != 0 {
        return Err(Error::UnsafeDir {
            path: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// The daemon's lifetime lock: held while the value lives (the descriptor closes on drop,
/// and on any exit, including kill -9, which is what makes a stale socket detectable).
#[derive(Debug)]
pub struct LifetimeLock {
    _file: std::fs::File,
}

impl LifetimeLock {
    /// Takes the lock without waiting; `Ok(None)` when another daemon holds it.
    pub fn try_take(path: &Path) -> Result<Option<LifetimeLock>, Error> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|source| Error::Io {
                op: "opening",
                path: path.to_path_buf(),
                source,
            })?;
        // SAFETY: flock(2) on a descriptor this function owns; no memory is passed.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(Some(LifetimeLock { _file: file }));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Ok(None);
        }
        Err(Error::Io {
            op: "locking",
            path: path.to_path_buf(),
            source: e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn endpoint_layout_and_dir_checks() {
        let t = tempfile::tempdir().unwrap();
        let e = endpoint(Some(t.path()), &[0xab; 32]).unwrap();
        assert_eq!(e.sock, t.path().join("sgcache/abababababababab.sock"));
        assert_eq!(e.lock, t.path().join("sgcache/abababababababab.lock"));
        let mode = std::fs::metadata(t.path().join("sgcache")).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
        // A group-writable directory is refused.
        std::fs::set_permissions(
            t.path().join("sgcache"),
            std::fs::Permissions::from_mode(0o770),
        )
        .unwrap();
        assert!(matches!(
            endpoint(Some(t.path()), &[0xab; 32]),
            Err(Error::UnsafeDir { .. })
        ));
        let long = t.path().join("x".repeat(120));
        assert!(matches!(
            endpoint(Some(&long), &[1; 32]),
            Err(Error::PathTooLong { .. }) | Err(Error::Io { .. })
        ));
    }

    #[test]
    fn lock_is_exclusive() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.lock");
        let a = LifetimeLock::try_take(&p).unwrap();
        assert!(a.is_some());
        assert!(LifetimeLock::try_take(&p).unwrap().is_none());
        drop(a);
        assert!(LifetimeLock::try_take(&p).unwrap().is_some());
    }
}
