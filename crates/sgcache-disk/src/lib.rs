//! The GOCACHE-compatible local tier of sgcache.
//!
//! A [`DiskCache`] reads and writes a directory that is byte-compatible with the go command's
//! own `DiskCache` (`cmd/go/internal/cache`): `go build` with or without sgcache uses the same
//! directory, and each reads what the other wrote.
//!
//! # Layout
//!
//! ```text
//! <dir>/
//! ├── README                  written once if missing (Go's exact text), never rewritten
//! ├── trim.txt                last trim, unix seconds as "%d" (no newline); flock-guarded
//! ├── testexpire.txt          go clean -testcache (not ours; kept by clean)
//! ├── fuzz/                   go test -fuzz corpus (not ours; kept by trim and clean)
//! ├── sgcache/                sgcache's own state: stats.json, stats.lock
//! ├── 00/ … ff/               256 subdirectories, named by the first byte of the id
//! │   ├── <actionid hex>-a    175-byte index entry: "v1 <id> <out> <size%20> <nanos%20>\n"
//! │   ├── <outputid hex>-d    output bytes; name = SHA-256 of the content (unsalted)
//! │   ├── <outputid hex>-d/   executable entry (go run / go tool, Go ≥ 1.24):
//! │   │   └── <exe name>      exactly one file, mode 0o777
//! │   └── <outhex>.tmp-<pid>-<n>   sgcache put in progress (ignored by Go: no -a/-d suffix)
//! ```
//!
//! # Who else touches these files, and why each write is safe
//!
//! The directory is shared, without any lock on entries, with: the go command itself (reading,
//! writing `-d` files **in place** with the last byte last, and rewriting `-a` files), other
//! sgcache processes, a trim running in parallel in any of them, and `go clean -cache`, which
//! removes whole subdirectories at any moment. The only lock anyone takes is the flock on
//! `trim.txt`. Safety therefore rests on these rules, which every writer here follows:
//!
//! * **Readers treat every anomaly as a miss.** [`DiskCache::get`] applies Go's full list of
//!   checks to the `-a` file; [`DiskCache::get_file`] requires the `-d` size to equal the entry
//!   size. A missing, short, torn or foreign file is `Ok(None)`, never an error.
//! * **Outputs appear atomically.** Every output goes through [`PendingPut`]: the bytes are
//!   written to a temp file in the final subdirectory, hashed while written, checked against
//!   the announced OutputID and size, and only then `rename`d to `<out>-d`. A reader (Go or
//!   sgcache) sees either no file, the old file, or the complete new file. Because the content
//!   is checked before the rename, two writers of the same OutputID write identical bytes and
//!   either rename wins. Go's own in-place writer only ever writes the correct bytes, so
//!   replacing its file by rename cannot expose wrong content either.
//! * **Index entries are written, then truncated.** Every `-a` write goes through
//!   [`DiskCache::put_index_entry`]: open without `O_TRUNC`, write 175 bytes, then truncate to
//!   175 (golang/go#29667). A concurrent identical write is idempotent and never observes an
//!   empty file; concurrent different writes are last-writer-wins, exactly as in Go.
//! * **Data before index.** The `-d` is committed before the `-a` that names it, so an entry
//!   never points at an output that was never written (it may still point at one a trim removed
//!   later — that is a normal miss).
//! * **Trim only removes old things.** Age trim removes `-a`/`-d` not used for 5 days + 1 hour
//!   (Go's rule), so it cannot remove what another process just used (`markUsed` refreshes
//!   mtimes at most hourly). Temp files are only removed after an hour without writes.
//!   `verify --repair` skips anything modified in the last few minutes (it may be a write in
//!   progress) and re-checks a file right before removing it.
//! * **`go clean -cache` may remove a subdirectory under us.** Writers recreate a missing
//!   subdirectory and retry once; readers see a miss.
//!
//! # API map
//!
//! * lookups: [`DiskCache::get`], [`DiskCache::get_file`], [`DiskCache::find_output`];
//! * writes: [`DiskCache::begin_put`] → [`PendingPut`], [`DiskCache::put_index_entry`],
//!   [`DiskCache::put_bytes`];
//! * maintenance: [`DiskCache::trim_if_due`] / [`DiskCache::trim_if_due_with`],
//!   [`DiskCache::trim`], [`DiskCache::verify`],
//!   [`DiskCache::scan`], [`DiskCache::clean`];
//! * cumulative counters: [`add_counters`], [`read_counters`];
//! * hashing: [`sha256`], [`subkey`], [`file_hash`], [`struct@Hash`]; directory: [`default_dir`].

mod cache;
mod clock;
mod counters;
mod dirs;
mod entry;
mod error;
mod fsutil;
mod hash;
pub mod layout;
mod put;
mod scan;
mod trim;
mod verify;
mod walk;

pub use cache::{DiskCache, README_TEXT};
pub use clock::{Clock, ManualClock, SystemClock, unix_nanos, unix_secs};
pub use counters::{add_counters, counters_path, read_counters};
pub use dirs::{OsFamily, default_dir, default_dir_for};
pub use entry::{ENTRY_SIZE, MissReason, format_index_entry, parse_index_entry};
pub use error::{Error, Result};
pub use hash::{Hash, file_hash, sha256, strip_experiment, subkey};
pub use put::PendingPut;
pub use scan::{ScanItem, ScanKind, ScanSummary};
pub use trim::{
    SIZE_TRIM_MIN_AGE, TEMP_MAX_AGE, TRIM_INTERVAL, TRIM_LIMIT, TrimOptions, TrimReport,
};
pub use verify::{Problem, ProblemKind, VERIFY_GRACE, VerifyReport};

pub use sgcache_types::{ActionId, HASH_SIZE, IndexEntry, MetricsSnapshot, OutputId};
