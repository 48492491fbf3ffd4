//! The shared daemon: one process per configuration doing the remote work of many go
//! commands, so they share its connection pools, upload queue, single-flight maps and
//! prefetch state, and so uploads queued by a go command that has exited still get
//! delivered.
//!
//! Split of work (the invariants the rest relies on):
//! - The `sgcache` the go command starts keeps serving the GOCACHEPROG protocol itself:
//!   parsing, local gets and puts never leave that process, so a warm build pays no extra
//!   hop. Only remote work crosses the socket ([`client`]): lookups for local misses,
//!   upload jobs after puts, the actions used (for the manifest), and at connect the build
//!   context for prefetch.
//! - The socket never carries a path or content: the daemon writes verified entries into
//!   the shared local tier and says `found`; the client re-reads the entry with
//!   `get_file`, exactly as for a local hit. An upload job names ids; the daemon finds the
//!   output in the local tier and checks it against the index entry before queueing it.
//! - A daemon failure never fails a build: connect and hello have a short timeout; after
//!   that any error, EOF, malformed answer or overdue answer switches the client to an
//!   in-process [`crate::tier::RemoteTier`] (created on first need), which redoes every
//!   lookup and upload the daemon had not answered. Acknowledged uploads are the daemon's.
//! - One daemon per configuration hash ([`crate::config::daemon_key`]) and per user; see
//!   [`socket`] for the directory, the lifetime lock and stale sockets.

mod client;
pub mod metrics;
mod server;
pub mod socket;
pub mod wire;

pub use client::DaemonClient;
pub use server::{Prefetched, prefetch, run, status};

use std::path::PathBuf;

/// Daemon errors (each names what it was doing and on which path).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("{op} `{}`: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The socket directory is not ours alone.
    #[error(
        "daemon directory `{}` is not a directory owned by this user and closed to others; \
         remove it or set XDG_RUNTIME_DIR",
        path.display()
    )]
    UnsafeDir { path: PathBuf },
    /// The socket path does not fit in `sockaddr_un`.
    #[error("daemon socket path `{}` is too long for a Unix socket; set XDG_RUNTIME_DIR to a shorter directory", path.display())]
    PathTooLong { path: PathBuf },
    /// Nothing to share without a remote.
    #[error("no remote configured (SGCACHE_REMOTE): a daemon would have nothing to do")]
    NoRemote,
    /// No daemon answered on the socket.
    #[error("no daemon answers on `{}`: {reason}", path.display())]
    NotRunning { path: PathBuf, reason: String },
}
