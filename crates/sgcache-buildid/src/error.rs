//! The one error type of this crate.
//!
//! Messages follow the shape of the Go errors `go tool buildid` prints (`open x: no such
//! file or directory`, `parse x: malformed object file`), so a user comparing the two tools
//! sees the same thing, but say more where Go's text is cryptic (a bare `EOF`).

use std::io;
use std::path::PathBuf;

use crate::io::go_text;

/// Why a build ID could not be read, hashed or rewritten.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened.
    #[error("open {}: {}", path.display(), go_text(source))]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading failed (including a directory given as the file).
    #[error("read {}: {}", path.display(), go_text(source))]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file ends before a header or note it announces (Go reports `EOF` or
    /// `unexpected EOF`).
    #[error("read {}: unexpected EOF: {what}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read when the file ended.
        what: &'static str,
    },
    /// The file is not a well-formed object file of the kind its header claims.
    #[error("parse {}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, in Go's words where Go has words for it.
        reason: String,
    },
    /// Writing the new build ID (or the re-computed code signature) failed.
    #[error("write {}: {}", path.display(), go_text(source))]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The build ID has no `/`: Go 1.7 and older, which `-w` cannot update.
    #[error("{}: build ID is a legacy format...binary too old for this tool", path.display())]
    Legacy {
        /// The file.
        path: PathBuf,
    },
    /// The recomputed ID would not fit where the old one was (Go's "internal error").
    #[error("{}: build ID length mismatch {old:?} vs {new:?}", path.display())]
    LengthMismatch {
        /// The file.
        path: PathBuf,
        /// The ID in the file.
        old: String,
        /// The ID that would replace it.
        new: String,
    },
    /// `find_and_hash` was given an empty ID.
    #[error("buildid.FindAndHash: no id specified")]
    NoId,
    /// `find_and_hash` was given an ID longer than its buffer.
    #[error("buildid.FindAndHash: buffer too small (id is {id_len} bytes, buffer {buf_size})")]
    BufferTooSmall {
        /// Length of the ID.
        id_len: usize,
        /// The buffer size in effect.
        buf_size: usize,
    },
    /// Reading the stream given to `find_and_hash` failed.
    #[error("buildid.FindAndHash: read: {}", go_text(source))]
    Stream {
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn malformed(path: &std::path::Path, reason: impl Into<String>) -> Self {
        Error::Malformed {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    /// Maps an I/O error from reading `path`: a short read becomes [`Error::Truncated`].
    pub(crate) fn read(path: &std::path::Path, what: &'static str, e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::Truncated {
                path: path.to_owned(),
                what,
            }
        } else {
            Error::Read {
                path: path.to_owned(),
                source: e,
            }
        }
    }
}
