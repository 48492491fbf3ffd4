//! Fault injection and trial counts for the reliability tests: a seeded PRNG, tmpfs mounts,
//! killing the sgcache a go command started.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::bin;

/// Whether the full trial counts were asked for (`SGCACHE_RELIABILITY_FULL=1`); CI runs the
/// reduced counts.
pub fn full() -> bool {
    std::env::var("SGCACHE_RELIABILITY_FULL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `reduced` trials by default, `full_n` with `SGCACHE_RELIABILITY_FULL=1`.
pub fn trials(reduced: usize, full_n: usize) -> usize {
    if full() { full_n } else { reduced }
}

/// A small deterministic PRNG (xorshift64*), seeded from `SGCACHE_RELIABILITY_SEED` or the
/// clock; the seed is printed so a failing run can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds from `SGCACHE_RELIABILITY_SEED` or the clock, printing the seed for `test`.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("SGCACHE_RELIABILITY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: seed {seed} (replay with SGCACHE_RELIABILITY_SEED={seed})");
        Rng::new(seed)
    }

    /// A generator with a fixed seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A tmpfs mounted for the life of the value (unmounted on drop). `None`, with the reason
/// printed, when mounting is not possible (not root, no mount command).
#[derive(Debug)]
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "8m") on `dir` (created if missing).
    pub fn mount(test: &str, dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0777"))
            .arg("tmpfs")
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
            }),
            Ok(o) => {
                eprintln!(
                    "SKIP {test}: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIP {test}: cannot run mount: {e}");
                None
            }
        }
    }

    /// Remounts read-only (`ro = true`) or read-write.
    pub fn remount(&self, ro: bool) -> bool {
        Command::new("mount")
            .args(["-o", if ro { "remount,ro" } else { "remount,rw" }])
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A GOCACHEPROG wrapper script that records the pid of the sgcache it execs into
/// `$SGCACHE_PIDFILE` (so a test can SIGKILL exactly that process).
pub fn pid_wrapper(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("sgcache-pid-wrapper.sh");
    let body = format!(
        "#!/bin/sh\necho $$ >> \"$SGCACHE_PIDFILE\"\nexec '{}' \"$@\"\n",
        bin().display()
    );
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// SIGKILLs one process by pid (ours: a child or an sgcache our go command started).
pub fn sigkill(pid: i32) {
    // SAFETY: kill(2) with a pid we read from our own pid file; no memory involved.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}
