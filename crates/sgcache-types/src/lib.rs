//! The words every sgcache crate shares, as types.
//!
//! - [`ActionId`] and [`OutputId`]: the go command's two 32-byte keys
//!   (`cmd/go/internal/cache`: `ActionID`, `OutputID`). Both are SHA-256 sums, but they name
//!   different things — an action's inputs, an output's content — so they are distinct
//!   types: a function that takes both cannot be called with the two swapped.
//! - [`IndexEntry`]: the one fact a cache stores, "action → output, size, time" — Go's index
//!   entry (the `-a` file). The local tier, the remote's action entries, a manifest's
//!   records, the daemon's wire and the upload queue all carry this one type.
//! - [`Metrics`]: every counter sgcache keeps, as typed fields, with a serializable
//!   [`MetricsSnapshot`] for the stats file, `stats --json`, the summary line and the
//!   Prometheus endpoint.
//!
//! No I/O, no policy.

mod entry;
mod id;
pub mod metrics;

pub use entry::IndexEntry;
pub use id::{ActionId, HASH_SIZE, IdParseError, OutputId};
pub use metrics::{Counter, Metrics, MetricsSnapshot};
