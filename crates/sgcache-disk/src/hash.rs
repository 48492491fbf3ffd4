//! Hash helpers with the same definitions as Go's `cmd/go/internal/cache/hash.go`.
//!
//! ActionIDs are computed by the go command (salted with its version); OutputIDs are the plain,
//! unsalted SHA-256 of the content. sgcache never invents ActionIDs, but these helpers let tests
//! and tools reproduce Go's values.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::HASH_SIZE;
use crate::error::{Error, Result};

type Id = [u8; HASH_SIZE];

/// Plain SHA-256 of `data`: the OutputID of an output with these bytes.
pub fn sha256(data: &[u8]) -> Id {
    Sha256::digest(data).into()
}

/// Go's `Subkey(parent, desc)`: `SHA-256("subkey:" ‖ parent ‖ desc)`, unsalted.
pub fn subkey(parent: &Id, desc: &str) -> Id {
    let mut h = Sha256::new();
    h.update(b"subkey:");
    h.update(parent);
    h.update(desc.as_bytes());
    h.finalize().into()
}

/// Go's `FileHash` without the per-process memo: plain SHA-256 of the file's contents.
pub fn file_hash(path: impl AsRef<Path>) -> Result<Id> {
    let path = path.as_ref();
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    hash_reader(&mut f).map_err(|e| Error::io("read", path, e))
}

/// SHA-256 of everything `r` yields.
pub(crate) fn hash_reader(r: &mut impl Read) -> std::io::Result<Id> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(h.finalize().into())
}

/// Go's `cache.Hash` (`NewHash`): SHA-256 over an optional salt followed by everything written.
/// The go command salts with `stripExperiment(runtime.Version())`; the name is for debugging
/// only and is not hashed.
#[derive(Clone)]
pub struct Hash {
    name: String,
    h: Sha256,
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hash")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Hash {
    /// `NewHash(name)` with `salt` (Go's `hashSalt`; `None` or empty = unsalted).
    pub fn new(name: &str, salt: Option<&[u8]>) -> Self {
        let mut h = Sha256::new();
        if let Some(salt) = salt {
            h.update(salt);
        }
        Hash {
            name: name.to_owned(),
            h,
        }
    }

    /// Adds bytes to the running hash.
    pub fn write(&mut self, data: &[u8]) {
        self.h.update(data);
    }

    /// The name given to [`Hash::new`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hash of everything written so far (the hash itself stays usable, like Go's `Sum`).
    pub fn sum(&self) -> Id {
        self.h.clone().finalize().into()
    }
}

impl std::io::Write for Hash {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.h.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Go's `stripExperiment`: cuts a version string at the first `" X:"` or `"-X:"`, giving the salt
/// the go command uses for `NewHash`.
pub fn strip_experiment(version: &str) -> &str {
    if let Some(i) = version.find(" X:") {
        return &version[..i];
    }
    if let Some(i) = version.find("-X:") {
        return &version[..i];
    }
    version
}

const _: () = assert!(HASH_SIZE == 32);

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

    // Go's TestHash (hashSalt = nil).
    #[test]
    fn go_test_hash() {
        let mut h = Hash::new("alice", None);
        h.write(b"hello world");
        assert_eq!(hex::encode(h.sum()), HELLO);
        // Salted hash differs and equals sha256(salt ‖ data).
        let mut s = Hash::new("alice", Some(b"go1.26.8"));
        s.write(b"hello world");
        assert_eq!(s.sum(), sha256(b"go1.26.8hello world"));
        assert_ne!(s.sum(), h.sum());
    }

    // Go's TestHashFile.
    #[test]
    fn go_test_hash_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "hello world").unwrap();
        let id: Id = file_hash(&p).unwrap();
        assert_eq!(hex::encode(id), HELLO);
        assert!(file_hash(dir.path().join("missing")).is_err());
    }

    #[test]
    fn subkey_vector() {
        assert_eq!(
            hex::encode(subkey(&[0; 32], "stdout")),
            "09faffe22b4d61ac89ebe94e1e8f3e2d2c67ae653cc00b87d9a1fee1584f20f4"
        );
    }

    #[test]
    fn empty_output_id() {
        assert_eq!(
            hex::encode(sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn strip_experiment_cases() {
        assert_eq!(strip_experiment("go1.23.5"), "go1.23.5");
        assert_eq!(
            strip_experiment("devel go1.26-abc X:foo"),
            "devel go1.26-abc"
        );
        assert_eq!(strip_experiment("go1.26.8-X:foo"), "go1.26.8");
    }
}
