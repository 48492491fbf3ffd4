//! The one seam between the serve loop and remote work.
//!
//! The serve loop does every local get and put itself; only what involves the remote goes
//! through [`RemoteWork`]: a lookup for a local miss, an upload after a put, and the record
//! of the actions this run used (for the manifest). It is done either in this process
//! ([`RemoteTier`]) or by the shared daemon ([`DaemonClient`], which falls back to an
//! in-process tier by itself whenever the daemon fails), so `serve.rs` has no daemon
//! branches.

use std::path::PathBuf;

use sgcache_disk::{Entry, Id};
use sgcache_store::DrainReport;

use crate::daemon::DaemonClient;
use crate::tier::{Found, RemoteTier};

/// Where remote work is done.
#[derive(Debug)]
pub enum RemoteWork {
    /// In this process, on its own runtime.
    InProcess(RemoteTier),
    /// By the shared daemon (with in-process fallback).
    Daemon(DaemonClient),
}

impl RemoteWork {
    /// Looks `action` up remotely and calls `done`, from any thread, with the local entry
    /// and path once a verified hit is in the local tier, or `None`.
    pub fn lookup(&self, action: Id, done: impl FnOnce(Found) + Send + 'static) {
        match self {
            RemoteWork::InProcess(t) => t.lookup(action, done),
            RemoteWork::Daemon(d) => d.lookup(action, Box::new(done)),
        }
    }

    /// Records that this run used `action`, which produced `entry` (for the manifest).
    pub fn note_used(&self, action: Id, entry: &Entry) {
        match self {
            RemoteWork::InProcess(t) => t.note_used(action, entry),
            RemoteWork::Daemon(d) => d.note_used(action, entry),
        }
    }

    /// Queues the upload of a fresh local entry whose bytes are at `path`.
    pub fn upload(&self, action: Id, out: Id, size: u64, time_nanos: i64, path: PathBuf) {
        match self {
            RemoteWork::InProcess(t) => t.upload(action, out, size, time_nanos, path),
            RemoteWork::Daemon(d) => d.upload(action, out, size, time_nanos, path),
        }
    }

    /// End of the run: in-process, waits for lookups, stores the manifest and drains the
    /// uploads; with a daemon, waits only until the daemon has acknowledged every upload
    /// (it delivers them after this process exits).
    pub fn finish(&self) -> DrainReport {
        match self {
            RemoteWork::InProcess(t) => t.finish(),
            RemoteWork::Daemon(d) => d.finish(),
        }
    }

    /// Counters for the stats file and the summary line.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        match self {
            RemoteWork::InProcess(t) => t.counters(),
            RemoteWork::Daemon(d) => d.counters(),
        }
    }

    /// How remote work was done, for the summary line.
    pub fn describe(&self) -> String {
        match self {
            RemoteWork::InProcess(_) => "in-process".to_owned(),
            RemoteWork::Daemon(d) => d.describe(),
        }
    }
}
