//! The crate's error type. A cache miss is never an error (`Ok(None)`); these variants are for
//! I/O that failed on a path we had to write or read, and for puts whose bytes do not match
//! what the caller announced.

use std::path::PathBuf;

/// Errors of the local tier. Every message is one line and names the path (in backticks) or the
/// id involved, because the text may travel back to the go command and into a build log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed on a path.
    #[error("cannot {op} `{}`: {source}", path.display())]
    Io {
        /// What we were doing (`open`, `write`, `rename`, …).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The cache directory does not exist or is not a directory (Go's `Open` contract).
    #[error("cache directory `{}` is not a directory", path.display())]
    NotADirectory {
        /// The offending path.
        path: PathBuf,
    },
    /// A put delivered a different number of bytes than announced.
    #[error("output {out}: expected {expected} bytes, got {got}; the put was discarded")]
    SizeMismatch {
        /// OutputID (hex) the put was announced with.
        out: String,
        /// Announced size.
        expected: u64,
        /// Bytes actually written.
        got: u64,
    },
    /// A put delivered bytes whose SHA-256 differs from the announced OutputID.
    #[error("output {expected}: content hashes to {got}; the put was discarded")]
    HashMismatch {
        /// OutputID (hex) the put was announced with.
        expected: String,
        /// SHA-256 (hex) of the bytes actually written.
        got: String,
    },
    /// `<out>-d` is a directory (an executable entry written by the go command) that does not
    /// hold exactly one file, so it cannot be used or replaced by a put.
    #[error("invalid executable cache entry `{}`: {reason}; run `sgcache verify --repair` or `go clean -cache`", path.display())]
    InvalidExecutableEntry {
        /// The `-d` directory.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },
    /// The `trim.txt` lock is not supported by this file system (Go returns this error too).
    #[error("file locking is not supported on `{}`: {source}", path.display())]
    LockUnsupported {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The cache directory could not be determined (see [`crate::default_dir`]).
    #[error("cannot locate the build cache: {0}")]
    NoCacheDir(String),
    /// `stats.json` exists but cannot be parsed.
    #[error("cannot parse `{}`: {source}", path.display())]
    Counters {
        /// The counters file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether retrying the same operation later could succeed (a transient I/O condition)
    /// rather than being a permanent property of the request or the directory.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::StorageFull
                    | std::io::ErrorKind::ResourceBusy
            ),
            _ => false,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
