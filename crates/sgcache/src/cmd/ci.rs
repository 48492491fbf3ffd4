//! `sgcache ci`: helpers for CI jobs (the GitHub Action runs them; any CI can).
//!
//! `restore-mtimes` makes `go test` results reusable across fresh checkouts. The go command
//! keys a cached test result on the size and modification time of every file and directory
//! the test opened (`cmd/go/internal/test`, `hashOpen`/`hashStat`; it never hashes their
//! content), and a fresh checkout gives every file a new mtime, so a test that reads
//! `testdata/` never hits a shared cache. This command sets the mtime of every git-tracked
//! file, and of every directory holding one, to a time **derived from its content**:
//!
//! - a file: from its blob id in the index (`git ls-files -s`), i.e. from its bytes;
//! - a directory: from the paths and blob ids of every tracked file below it (what it lists,
//!   recursively; its own entries' stats are part of what the go command hashes).
//!
//! The time is a point between 2001 and 2010 with nanoseconds, chosen by SHA-256 of that
//! content: the same content gets the same mtime on every checkout, at any clone depth, and
//! different content gets a different one (a collision needs the same size and the same
//! ~58 bits of time). Files modified in the work tree relative to the index are left alone
//! (their content is not the blob's), as are symlinks and submodules. The trade-off against
//! "the time of the last commit that touched the file" is in `docs/ci.md`: that rule needs the
//! full history (a depth-1 checkout gives every file the head commit's time, so no test result
//! survives the next commit), while this one gives up meaningful, ordered dates.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::cli::CiCommand;

/// Runs an `sgcache ci` subcommand.
pub fn run(cmd: &CiCommand) -> Result<ExitCode> {
    match cmd {
        CiCommand::RestoreMtimes(args) => {
            let r = restore_mtimes(&args.path)?;
            let mut out = std::io::stdout().lock();
            write!(
                out,
                "restore-mtimes: set {} files and {} directories in `{}` from their content",
                r.files,
                r.dirs,
                r.root.display()
            )?;
            if r.skipped > 0 {
                write!(out, "; left {} modified or missing files alone", r.skipped)?;
            }
            writeln!(out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What [`restore_mtimes`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The work tree's top directory.
    pub root: PathBuf,
    /// Files whose mtime was set.
    pub files: u64,
    /// Directories whose mtime was set.
    pub dirs: u64,
    /// Tracked files left alone: modified in the work tree, or not there.
    pub skipped: u64,
}

/// Seconds since the epoch of the earliest time given (2001-09-09).
const BASE_SECS: u64 = 1_000_000_000;
/// Width of the range of times, in seconds (about 8.5 years).
const RANGE_SECS: u64 = 1 << 28;

/// The mtime for content whose digest is `d`: seconds and nanoseconds since the epoch.
pub fn mtime_of(d: &[u8; 32]) -> (i64, u32) {
    let secs = u64::from_le_bytes(d[..8].try_into().expect("8 bytes")) % RANGE_SECS;
    let nanos = u32::from_le_bytes(d[8..12].try_into().expect("4 bytes")) % 1_000_000_000;
    ((BASE_SECS + secs) as i64, nanos)
}

/// Sets the mtimes of the work tree containing `path` (see the module docs).
pub fn restore_mtimes(path: &Path) -> Result<Restored> {
    let top = git(path, &["rev-parse", "--show-toplevel"])?;
    let root = PathBuf::from(String::from_utf8_lossy(&top).trim_end_matches(['\n', '\r']));
    // Work-tree changes, judged by content (status refreshes stale stat information).
    let status = git(
        &root,
        &[
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=no",
            "--ignore-submodules=all",
        ],
    )?;
    let modified = modified_in_worktree(&status);
    let index = git(&root, &["ls-files", "-s", "-z"])?;
    let mut files = 0;
    let mut skipped = 0;
    // Every directory holding a tracked file, with a hash of everything tracked below it.
    let mut dirs: BTreeMap<Vec<u8>, Sha256> = BTreeMap::new();
    for rec in index.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let Some((mode, blob, stage, rel)) = parse_ls_files(rec) else {
            bail!(
                "`git ls-files -s` in `{}` printed an unexpected line: {:?}",
                root.display(),
                String::from_utf8_lossy(rec)
            );
        };
        // Conflicted entries, symlinks (we would set the target's time) and submodules.
        if stage != b"0" || mode == b"120000" || mode == b"160000" {
            continue;
        }
        for (i, _) in rel.iter().enumerate().filter(|&(_, &b)| b == b'/') {
            note(&mut dirs, &rel[..i], rel, blob);
        }
        note(&mut dirs, b"", rel, blob);
        if modified.contains(rel) {
            skipped += 1;
            continue;
        }
        let file = root.join(rel_path(rel));
        let digest: [u8; 32] = Sha256::new()
            .chain_update(b"sgcache-mtime-v1 file\0")
            .chain_update(blob)
            .finalize()
            .into();
        match set_mtime(&file, &digest) {
            Ok(()) => files += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => skipped += 1,
            Err(e) => bail!("setting the mtime of `{}`: {e}", file.display()),
        }
    }
    let mut ndirs = 0;
    // Directories last: setting a file's time does not touch its directory, but be plain.
    for (rel, h) in dirs {
        let dir = root.join(rel_path(&rel));
        let digest: [u8; 32] = h.finalize().into();
        match set_mtime(&dir, &digest) {
            Ok(()) => ndirs += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => bail!("setting the mtime of `{}`: {e}", dir.display()),
        }
    }
    Ok(Restored {
        root,
        files,
        dirs: ndirs,
        skipped,
    })
}

/// Adds file `rel` with blob `blob` to the hash of directory `dir`.
fn note(dirs: &mut BTreeMap<Vec<u8>, Sha256>, dir: &[u8], rel: &[u8], blob: &[u8]) {
    let h = dirs.entry(dir.to_vec()).or_insert_with(|| {
        let mut h = Sha256::new();
        h.update(b"sgcache-mtime-v1 dir\0");
        h
    });
    h.update(rel);
    h.update(b"\0");
    h.update(blob);
    h.update(b"\n");
}

fn set_mtime(path: &Path, digest: &[u8; 32]) -> std::io::Result<()> {
    let (secs, nanos) = mtime_of(digest);
    filetime::set_file_mtime(path, filetime::FileTime::from_unix_time(secs, nanos))
}

/// One record of `git ls-files -s`: mode, blob id, stage, path.
type IndexRecord<'a> = (&'a [u8], &'a [u8], &'a [u8], &'a [u8]);

/// `<mode> SP <blob> SP <stage> TAB <path>`.
fn parse_ls_files(rec: &[u8]) -> Option<IndexRecord<'_>> {
    let tab = rec.iter().position(|&b| b == b'\t')?;
    let (meta, rel) = (&rec[..tab], &rec[tab + 1..]);
    let mut it = meta.split(|&b| b == b' ');
    let (mode, blob, stage) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || blob.is_empty() || rel.is_empty() {
        return None;
    }
    Some((mode, blob, stage, rel))
}

/// Paths whose work-tree file differs from the index, from `git status --porcelain=v1 -z`
/// (`XY path`, and for a rename or copy in the index one more NUL-terminated old path).
fn modified_in_worktree(status: &[u8]) -> HashSet<Vec<u8>> {
    let mut out = HashSet::new();
    let mut recs = status.split(|&b| b == 0);
    while let Some(rec) = recs.next() {
        if rec.len() < 4 {
            continue;
        }
        let (x, y, rel) = (rec[0], rec[1], &rec[3..]);
        if matches!(x, b'R' | b'C') {
            recs.next();
        }
        if y != b' ' {
            out.insert(rel.to_vec());
        }
    }
    out
}

#[cfg(unix)]
fn rel_path(rel: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(OsStr::from_bytes(rel))
}

#[cfg(not(unix))]
fn rel_path(rel: &[u8]) -> PathBuf {
    // git prints paths in UTF-8 (core.quotePath does not apply with -z).
    PathBuf::from(String::from_utf8_lossy(rel).into_owned())
}

/// Runs `git -C dir args…` and returns its stdout, or one line saying what failed.
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let what = || format!("running `git {}` in `{}`", args.join(" "), dir.display());
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .with_context(what)?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{}: {} ({})",
            what(),
            err.lines().next().unwrap_or("").trim(),
            out.status
        );
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_in_the_past_with_nanoseconds_and_spread() {
        let a = mtime_of(&[0; 32]);
        assert_eq!(a, (BASE_SECS as i64, 0));
        let b = mtime_of(&[0xff; 32]);
        assert!(b.0 < (BASE_SECS + RANGE_SECS) as i64 && b.1 < 1_000_000_000);
        let c: [u8; 32] = Sha256::digest(b"x").into();
        let d: [u8; 32] = Sha256::digest(b"y").into();
        assert_ne!(mtime_of(&c), mtime_of(&d));
    }

    #[test]
    fn parses_ls_files_and_status() {
        let (mode, blob, stage, rel) =
            parse_ls_files(b"100644 0123abcd 0\tdir/a b.txt").expect("parses");
        assert_eq!(
            (mode, blob, stage, rel),
            (
                &b"100644"[..],
                &b"0123abcd"[..],
                &b"0"[..],
                &b"dir/a b.txt"[..]
            )
        );
        assert!(parse_ls_files(b"garbage").is_none());
        let m = modified_in_worktree(b" M a.go\0M  staged.go\0R  new.go\0old.go\0MM both.go\0");
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort();
        assert_eq!(v, [b"a.go".to_vec(), b"both.go".to_vec()]);
    }
}
