//! Local → remote tiering for the serve loop.
//!
//! A local miss becomes a remote lookup on a small tokio runtime, so the reader thread
//! keeps serving while the download runs and the reply goes out whenever it is ready
//! (out of order). Order of trust on a remote hit:
//!
//! 1. the action entry comes from our namespace, then the read namespaces, and with a
//!    signing key only if its HMAC checks (`sgcache-store`);
//! 2. the object streams into a local temp file (`PendingPut`) while being hashed;
//! 3. only if its length and SHA-256 equal the entry's size and OutputID is it renamed
//!    into the local tier, and only then is the index entry written and a `DiskPath`
//!    handed to the go command. A bad object leaves nothing behind.
//!
//! Concurrent lookups that need the same object share one download.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use sgcache_disk::{DiskCache, Entry, Id};
use sgcache_store::{Remote, SingleFlight};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// The remote tier plus the runtime it runs on.
#[derive(Debug)]
pub struct RemoteTier {
    remote: Remote,
    rt: Runtime,
    inflight: Mutex<Vec<JoinHandle<()>>>,
    downloads: Arc<SingleFlight<Id, Option<PathBuf>>>,
}

impl RemoteTier {
    /// Starts the runtime (two worker threads: the work is I/O, and the go command
    /// needs the cores).
    pub fn new(remote: Remote) -> std::io::Result<RemoteTier> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sgcache-remote")
            .enable_all()
            .build()?;
        Ok(RemoteTier {
            remote,
            rt,
            inflight: Mutex::new(Vec::new()),
            downloads: Arc::new(SingleFlight::new()),
        })
    }

    /// The remote itself.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Enters the runtime on the calling thread (so uploads can be queued from it).
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.rt.enter()
    }

    /// Looks `action` up remotely in the background and calls `done` with the local
    /// entry and path on a verified hit, or `None`.
    pub fn lookup(
        &self,
        disk: Arc<DiskCache>,
        action: Id,
        done: impl FnOnce(Option<(Entry, PathBuf)>) + Send + 'static,
    ) {
        let remote = self.remote.clone();
        let downloads = self.downloads.clone();
        let task = self.rt.spawn(async move {
            done(fetch(&remote, &downloads, disk, action).await);
        });
        let mut v = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() >= 64 {
            v.retain(|h| !h.is_finished());
        }
        v.push(task);
    }

    /// Queues the upload of a fresh local entry.
    pub fn upload(&self, action: Id, out: Id, size: u64, time_nanos: i64, path: PathBuf) {
        self.remote
            .enqueue_upload(action, out, size, time_nanos, path);
    }

    /// Waits for lookups in flight, then for queued uploads up to the deadline.
    pub fn finish(&self) -> sgcache_store::DrainReport {
        let tasks = std::mem::take(&mut *self.inflight.lock().unwrap_or_else(|p| p.into_inner()));
        self.rt.block_on(async {
            for t in tasks {
                let _ = t.await;
            }
            self.remote.drain().await
        })
    }
}

async fn fetch(
    remote: &Remote,
    downloads: &SingleFlight<Id, Option<PathBuf>>,
    disk: Arc<DiskCache>,
    action: Id,
) -> Option<(Entry, PathBuf)> {
    let e = remote.get_action(&action).await?;
    let out = e.output_id;
    let size = e.size;
    let path = match disk.find_output(&out, size) {
        Some(p) => p,
        None => {
            let (remote, disk2) = (remote.clone(), disk.clone());
            downloads
                .run(
                    out,
                    async move { download(&remote, &disk2, out, size).await },
                )
                .await?
        }
    };
    if let Err(err) = disk.put_index_entry(&action, &out, size, e.time_nanos) {
        tracing::debug!("remote hit not indexed locally: {err}");
    }
    Some((
        Entry {
            output_id: out,
            size,
            time_nanos: e.time_nanos,
        },
        path,
    ))
}

/// Streams the object into a pending local output; commits only if it verifies.
async fn download(remote: &Remote, disk: &DiskCache, out: Id, size: u64) -> Option<PathBuf> {
    let mut pending = match disk.begin_put(&out, size) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!("remote download: {e}");
            return None;
        }
    };
    match remote.fetch_object(&out, size, &mut pending).await {
        Ok(true) => match pending.commit() {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(
                    "remote object {} rejected: {e}",
                    crate::serve::short_hex(&out)
                );
                None
            }
        },
        Ok(false) => None,
        Err(e) => {
            tracing::debug!("remote object {}: {e}", crate::serve::short_hex(&out));
            None
        }
    }
}
