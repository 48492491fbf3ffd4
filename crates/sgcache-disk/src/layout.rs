//! Pure layout functions: where every file of the cache lives and how names are recognised.
//! Nothing here touches the file system.
//!
//! ```text
//! <dir>/<xx>/<64 hex>-a              action entry, xx = lowercase hex of id[0]
//! <dir>/<xx>/<64 hex>-d              output file, named by the SHA-256 of its content
//! <dir>/<xx>/<64 hex>-d/<exe name>   executable entry (go run / go tool, Go ≥ 1.24)
//! <dir>/<xx>/<64 hex>.tmp-<pid>-<n>  sgcache put in progress (never ends in -a/-d)
//! ```

use std::path::{Path, PathBuf};

use sgcache_types::{ActionId, OutputId};

/// A 32-byte id of either kind, as it appears in a file name.
type Id = [u8; 32];

/// Lowercase hex digits, as Go's `%x` prints them.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// The marker that makes a name an sgcache temp file: `<outhex>.tmp-<pid>-<n>`.
pub const TEMP_MARKER: &str = ".tmp-";

/// Kind of a cache entry file, from its `-a` / `-d` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// `<actionid>-a`: a 175-byte index entry.
    Action,
    /// `<outputid>-d`: output bytes, or a directory holding one executable.
    Output,
}

impl EntryKind {
    /// The suffix letter (`a` or `d`).
    pub const fn key(self) -> u8 {
        match self {
            EntryKind::Action => b'a',
            EntryKind::Output => b'd',
        }
    }
}

/// Lowercase hex of an id into a stack buffer.
pub fn hex_id(id: &Id) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (i, b) in id.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
    out
}

/// `<64 hex>-<key>` as a stack buffer.
pub fn entry_file_name(id: &Id, kind: EntryKind) -> [u8; 66] {
    let mut out = [0u8; 66];
    out[..64].copy_from_slice(&hex_id(id));
    out[64] = b'-';
    out[65] = kind.key();
    out
}

/// The two-hex-digit subdirectory of an id.
pub fn subdir_name(id: &Id) -> [u8; 2] {
    [HEX[(id[0] >> 4) as usize], HEX[(id[0] & 15) as usize]]
}

/// `<dir>/<xx>/<hex>-<key>`, built with a single allocation.
pub fn entry_path(dir: &Path, id: &Id, kind: EntryKind) -> PathBuf {
    let d = dir.as_os_str();
    let mut s = std::ffi::OsString::with_capacity(d.len() + 1 + 2 + 1 + 66);
    s.push(d);
    let mut tail = [0u8; 1 + 2 + 1 + 66];
    tail[0] = std::path::MAIN_SEPARATOR as u8;
    tail[1..3].copy_from_slice(&subdir_name(id));
    tail[3] = std::path::MAIN_SEPARATOR as u8;
    tail[4..].copy_from_slice(&entry_file_name(id, kind));
    // The tail is pure ASCII.
    s.push(std::str::from_utf8(&tail).unwrap_or_default());
    PathBuf::from(s)
}

/// `<dir>/<xx>/<hex>-a`.
pub fn action_path(dir: &Path, id: &ActionId) -> PathBuf {
    entry_path(dir, id.as_bytes(), EntryKind::Action)
}

/// `<dir>/<xx>/<hex>-d`.
pub fn output_path(dir: &Path, out: &OutputId) -> PathBuf {
    entry_path(dir, out.as_bytes(), EntryKind::Output)
}

/// `<dir>/<xx>`.
pub fn subdir_path(dir: &Path, first_byte: u8) -> PathBuf {
    dir.join(subdir_str(first_byte))
}

/// `"00"` … `"ff"`.
pub fn subdir_str(first_byte: u8) -> String {
    let b = [
        HEX[(first_byte >> 4) as usize],
        HEX[(first_byte & 15) as usize],
    ];
    String::from_utf8_lossy(&b).into_owned()
}

/// `<dir>/<xx>/<outhex>.tmp-<pid>-<n>`: a temp file for a put in progress, in the final
/// subdirectory so the rename is within one directory (atomic) and `go clean -cache` removes
/// it with the subdirectory. The name never ends in `-a` or `-d`, so Go's trim and readers
/// ignore it.
pub fn temp_path(dir: &Path, out: &OutputId, pid: u32, n: u64) -> PathBuf {
    let mut p = subdir_path(dir, out.as_bytes()[0]);
    let hex = hex_id(out.as_bytes());
    p.push(format!(
        "{}{TEMP_MARKER}{pid}-{n}",
        std::str::from_utf8(&hex).unwrap_or_default()
    ));
    p
}

/// `<dir>/trim.txt`: Go's last-trim stamp (unix seconds, no newline), guarded by flock.
pub fn trim_txt_path(dir: &Path) -> PathBuf {
    dir.join("trim.txt")
}

/// `<dir>/README`.
pub fn readme_path(dir: &Path) -> PathBuf {
    dir.join("README")
}

/// `<dir>/sgcache`: sgcache's own state (never touched by the go command).
pub fn state_dir(dir: &Path) -> PathBuf {
    dir.join("sgcache")
}

/// Whether Go's trim would consider this name (`…-a` or `…-d`).
pub fn is_go_entry_name(name: &[u8]) -> bool {
    name.ends_with(b"-a") || name.ends_with(b"-d")
}

/// Whether this is an sgcache temp file name.
pub fn is_temp_name(name: &[u8]) -> bool {
    !is_go_entry_name(name)
        && name
            .windows(TEMP_MARKER.len())
            .any(|w| w == TEMP_MARKER.as_bytes())
}

/// Parses `<64 lowercase hex>-a|d` into its id and kind. Go only ever writes lowercase names,
/// so anything else is not a well-formed entry name.
pub fn parse_entry_name(name: &[u8]) -> Option<(Id, EntryKind)> {
    if name.len() != 66 || name[64] != b'-' {
        return None;
    }
    let kind = match name[65] {
        b'a' => EntryKind::Action,
        b'd' => EntryKind::Output,
        _ => return None,
    };
    if !name[..64]
        .iter()
        .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut id = [0u8; 32];
    hex::decode_to_slice(&name[..64], &mut id).ok()?;
    Some((id, kind))
}

/// Whether `name` is one of the 256 subdirectory names `[0-9a-f][0-9a-f]` (what
/// `go clean -cache` globs for).
pub fn is_subdir_name(name: &[u8]) -> bool {
    name.len() == 2 && name.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dummy_id<T: From<Id>>(x: u64) -> T {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&x.to_le_bytes());
        id.into()
    }

    #[test]
    fn golden_paths() {
        let dir = Path::new("/c");
        assert_eq!(
            action_path(dir, &dummy_id(1)),
            Path::new("/c/01/0100000000000000000000000000000000000000000000000000000000000000-a")
        );
        assert_eq!(
            output_path(dir, &dummy_id(12)),
            Path::new("/c/0c/0c00000000000000000000000000000000000000000000000000000000000000-d")
        );
        let mut id = [0xabu8; 32];
        id[0] = 0xff;
        assert_eq!(
            output_path(dir, &OutputId::from_bytes(id)),
            Path::new("/c/ff/ffababababababababababababababababababababababababababababababab-d")
        );
        assert_eq!(
            temp_path(dir, &dummy_id(2), 42, 7),
            Path::new(
                "/c/02/0200000000000000000000000000000000000000000000000000000000000000.tmp-42-7"
            )
        );
        assert_eq!(subdir_path(dir, 0), Path::new("/c/00"));
        assert_eq!(subdir_str(0xa5), "a5");
        assert_eq!(trim_txt_path(dir), Path::new("/c/trim.txt"));
        assert_eq!(state_dir(dir), Path::new("/c/sgcache"));
    }

    #[test]
    fn names() {
        let n = entry_file_name(&dummy_id::<Id>(1), EntryKind::Action);
        assert_eq!(parse_entry_name(&n), Some((dummy_id(1), EntryKind::Action)));
        let n = entry_file_name(&dummy_id::<Id>(9), EntryKind::Output);
        assert_eq!(parse_entry_name(&n), Some((dummy_id(9), EntryKind::Output)));
        let mut upper = n;
        upper[0] = b'A';
        assert_eq!(parse_entry_name(&upper), None);
        assert_eq!(parse_entry_name(b"README"), None);
        assert_eq!(parse_entry_name(&n[1..]), None);
        let t = temp_path(Path::new("/c"), &dummy_id(2), 1, 2);
        let tn = t.file_name().unwrap().as_encoded_bytes();
        assert!(is_temp_name(tn));
        assert!(!is_go_entry_name(tn));
        assert!(!is_temp_name(&n));
        assert!(is_subdir_name(b"0f"));
        assert!(!is_subdir_name(b"0F"));
        assert!(!is_subdir_name(b"fuzz"));
    }
}
