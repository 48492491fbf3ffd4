//! [`IndexEntry`].

use serde::{Deserialize, Serialize};

use crate::{ActionId, OutputId};

/// The fact a cache stores: action `action` produced output `output`, `size` bytes long, at
/// `time_nanos`. This is Go's index entry (`cmd/go/internal/cache.Entry` plus the ActionID
/// that names its `-a` file); sgcache uses the same type for the local tier, remote action
/// entries, manifest records, the daemon's wire and upload jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The action (cache key).
    pub action: ActionId,
    /// The output it produced (SHA-256 of the content).
    pub output: OutputId,
    /// Output size in bytes.
    pub size: u64,
    /// When the entry was made or last confirmed, Unix nanoseconds (Go's `Entry.Time`,
    /// which `go clean -testcache` compares against).
    #[serde(rename = "time")]
    pub time_nanos: i64,
}
