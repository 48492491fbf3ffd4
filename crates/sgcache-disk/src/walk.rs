//! The one walk over the 256 subdirectories, shared by [`scan`](crate::DiskCache::scan),
//! [`verify`](crate::DiskCache::verify) and trim.
//!
//! Other processes change the directory while it is walked (go commands add entries, a
//! trim or `go clean -cache` removes them, even whole subdirectories), so a subdirectory
//! that cannot be read is skipped, and each subdirectory's names are read in full before
//! the first is yielded (as Go's trim does), so a caller may remove what it is given.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::layout;

/// Every name in the subdirectories `00`…`ff` of `dir`, with its path, one subdirectory
/// after another (names in directory order).
pub(crate) fn entries(dir: &Path) -> impl Iterator<Item = (OsString, PathBuf)> + '_ {
    (0..=255u8).flat_map(move |i| {
        let sub = layout::subdir_path(dir, i);
        let names: Vec<OsString> = std::fs::read_dir(&sub)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        names.into_iter().map(move |name| {
            let path = sub.join(&name);
            (name, path)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_names_in_subdirectories_only_and_skips_missing_ones() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("00")).unwrap();
        std::fs::create_dir(tmp.path().join("ff")).unwrap();
        std::fs::create_dir(tmp.path().join("zz")).unwrap();
        std::fs::write(tmp.path().join("00/x-a"), b"").unwrap();
        std::fs::write(tmp.path().join("ff/y-d"), b"").unwrap();
        std::fs::write(tmp.path().join("zz/not-walked"), b"").unwrap();
        std::fs::write(tmp.path().join("README"), b"").unwrap();
        let mut got: Vec<_> = entries(tmp.path()).collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("x-a".into(), tmp.path().join("00/x-a")),
                ("y-d".into(), tmp.path().join("ff/y-d")),
            ]
        );
    }
}
