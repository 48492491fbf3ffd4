//! sgcache's tiering: the local tier (Go's own GOCACHE, `sgcache-disk`) in front of a remote
//! (`sgcache-store`), as one library used by both the in-process path and the shared daemon.
//!
//! # A remote get, from the go command and back
//!
//! 1. The serve loop (binary, `serve.rs`) reads `get <ActionID>`, misses in the local tier,
//!    and calls [`RemoteWork::lookup`].
//! 2. [`InProcess`] runs it on its runtime: [`Fetcher::lookup`] joins a lookup of the same
//!    action already in flight (from prefetch, or in the daemon another go command), or
//!    starts one: the action entry from the remote ([`sgcache_store::RemoteCache::get_entry`],
//!    namespaces in order, judged by the trust policy), unless a loaded manifest already
//!    named it.
//! 3. The object streams from the store through decompression into a `PendingPut` of the
//!    local tier, which hashes it; [`Fetcher`] commits it only if its length and SHA-256 equal
//!    the entry's, then writes the index entry (`-a`).
//! 4. The result goes back through the serve loop's `done` callback, which answers the go
//!    command with the local path: the go command only ever reads verified local files.
//!
//! With the daemon, step 2 crosses a Unix socket and the daemon runs steps 2–3 with its own
//! [`Fetcher`] over the same local directory; the client re-reads the entry it wrote.
//!
//! # Pieces
//!
//! - [`RemoteWork`]: the seam to the serve loop ([`LocalOnly`], [`InProcess`], the daemon
//!   client in the binary).
//! - [`Fetcher`]: lookups, downloads, the commit policy, single-flight.
//! - [`Session`]: one build context — manifest, prefetch, packs, the next manifest.
//! - [`pack`]: writing and reading packs.
//! - [`UsedActions`]: what a run used.
//!
//! Library code never reads the environment: the binary builds a
//! [`sgcache_store::RemoteConfig`] and a [`TierConfig`].

mod fetch;
pub mod local_state;
pub mod pack;
mod session;
mod used;
mod work;

pub use fetch::{Fetcher, Hit};
pub use session::{Session, Stored, merge, nothing_to_store};
pub use used::UsedActions;
pub use work::{
    Answer, Deferred, Done, InProcess, Lazy, LocalOnly, RemoteWork, TierConfig, runtime,
};

/// Locks a mutex, ignoring poisoning: every critical section here leaves its data valid.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
