//! [`Fetcher`]: a remote lookup, from the action entry to a verified output in the local
//! tier.
//!
//! Order of trust on a remote hit:
//!
//! 1. the action entry comes from our namespace, then the read namespaces, and only if the
//!    trust policy accepts it (`sgcache_store::keys::Trust`); a manifest record is the same
//!    fact and is trusted the same way;
//! 2. the object streams into a local temp file (`PendingPut`) while being hashed;
//! 3. only if its length and SHA-256 equal the entry's size and OutputID is it renamed into
//!    the local tier ([`commit_download`]), and only then is the index entry written and a
//!    path handed back. A bad object leaves nothing behind.
//!
//! Concurrent lookups of one action share one lookup, and lookups (and packs) that need the
//! same object share one download: one `Fetcher` serves a whole process (every go command of
//! a daemon shares it).
//!
//! The fetcher also remembers, for the life of the process, the trusted facts it has seen
//! (action → output, from entries and manifest records) to detect conflicts, and the outputs
//! whose remote copy it found corrupt, so an upload of the verified bytes overwrites them
//! (healing).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sgcache_disk::{DiskCache, PendingPut};
use sgcache_store::{Check, RemoteCache, SingleFlight};
use sgcache_types::{ActionId, IndexEntry, OutputId};

use crate::lock;

/// A verified hit: the entry, and the local file holding its output.
pub type Hit = (IndexEntry, PathBuf);

#[derive(Debug)]
struct Inner {
    remote: RemoteCache,
    disk: Arc<DiskCache>,
    downloads: SingleFlight<OutputId, Option<PathBuf>>,
    lookups: SingleFlight<ActionId, Option<Hit>>,
    /// Trusted facts seen so far (manifest records and entries), by action.
    known: Mutex<HashMap<ActionId, IndexEntry>>,
    /// Outputs whose remote copy failed verification here.
    corrupt: Mutex<HashSet<OutputId>>,
    /// Actions with a conflict counted (each once).
    conflicted: Mutex<HashSet<ActionId>>,
    conflict_warned: AtomicBool,
}

/// Remote lookups into one local tier. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

impl Fetcher {
    /// A fetcher writing verified remote hits into `disk`.
    pub fn new(remote: RemoteCache, disk: Arc<DiskCache>) -> Fetcher {
        Fetcher {
            inner: Arc::new(Inner {
                remote,
                disk,
                downloads: SingleFlight::new(),
                lookups: SingleFlight::new(),
                known: Mutex::default(),
                corrupt: Mutex::default(),
                conflicted: Mutex::default(),
                conflict_warned: AtomicBool::new(false),
            }),
        }
    }

    /// The remote.
    pub fn remote(&self) -> &RemoteCache {
        &self.inner.remote
    }

    /// The local tier.
    pub fn disk(&self) -> &Arc<DiskCache> {
        &self.inner.disk
    }

    pub(crate) fn downloads(&self) -> &SingleFlight<OutputId, Option<PathBuf>> {
        &self.inner.downloads
    }

    /// Looks `action` up remotely; on a verified hit the entry is in the local tier when
    /// this returns. An action a loaded manifest names is fetched directly (one request
    /// instead of two).
    pub async fn lookup(&self, action: ActionId) -> Option<Hit> {
        let known = lock(&self.inner.known).get(&action).copied();
        if let Some(r) = known {
            return self.lookup_known(r).await;
        }
        let this = self.clone();
        self.inner
            .lookups
            .run(action, async move { this.fetch(action).await })
            .await
    }

    /// Looks up `r.action` knowing, from a trusted manifest record, what it produced:
    /// fetches the output alone and indexes it; if the object is gone, falls back to a plain
    /// lookup of the entry.
    pub async fn lookup_known(&self, r: IndexEntry) -> Option<Hit> {
        let this = self.clone();
        self.inner
            .lookups
            .run(r.action, async move {
                match this.fetch_known(&r).await {
                    Some(hit) => Some(hit),
                    None => this.fetch(r.action).await,
                }
            })
            .await
    }

    /// Takes in the records of a trusted manifest: later lookups of their actions skip the
    /// entry request.
    pub fn learn(&self, records: &[IndexEntry]) {
        let mut known = lock(&self.inner.known);
        for r in records {
            if let Some(old) = known.insert(r.action, *r)
                && old.output != r.output
            {
                self.conflict(&r.action, &old.output, &r.output, "two trusted records");
            }
        }
    }

    /// What a put of `e` means for the remote: counts a conflict if a trusted remote fact
    /// said otherwise, and says whether the upload must overwrite a corrupt remote object.
    pub fn on_put(&self, e: &IndexEntry) -> bool {
        // From now on this build's output is what the process knows for the action.
        let old = lock(&self.inner.known).insert(e.action, *e);
        if let Some(old) = old
            && old.output != e.output
        {
            self.conflict(
                &e.action,
                &old.output,
                &e.output,
                "a trusted remote entry and this build",
            );
        }
        lock(&self.inner.corrupt).contains(&e.output)
    }

    /// Counts a conflict on `action` (once per action) and warns (once per process).
    fn conflict(&self, action: &ActionId, a: &OutputId, b: &OutputId, between: &str) {
        if !lock(&self.inner.conflicted).insert(*action) {
            return;
        }
        tracing::debug!(
            "remote: conflict on action {} between {between}: {} vs {}",
            action.short(),
            a.short(),
            b.short()
        );
        self.remote().metrics().remote_conflicting_entries.inc();

        if !self.inner.conflict_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "remote: action {} has two outputs ({} and {}) between {between}: the build is \
                 not reproducible, or someone wrote entries that do not match the sources \
                 (counted in remote_conflicting_entries; said once)",
                action.short(),
                a.short(),
                b.short()
            );
        }
    }

    /// Looks up the action entry, then fetches what it names.
    async fn fetch(&self, action: ActionId) -> Option<Hit> {
        let e = self.remote().get_entry(&action).await.found()?;
        {
            let mut known = lock(&self.inner.known);
            if let Some(old) = known.get(&action).copied()
                && old.output != e.output
            {
                drop(known);
                self.conflict(&action, &old.output, &e.output, "two trusted entries");
            } else {
                known.insert(action, e);
            }
        }
        self.fetch_known(&e).await
    }

    /// Fetches what a trusted entry names: the output is found locally or downloaded
    /// (verified against its id), then indexed. `None` if the object could not be had.
    async fn fetch_known(&self, e: &IndexEntry) -> Option<Hit> {
        let disk = self.disk();
        let path = match disk.find_output(&e.output, e.size) {
            Some(p) => p,
            None => {
                let (this, out, size) = (self.clone(), e.output, e.size);
                self.downloads()
                    .run(out, async move { this.download(out, size).await })
                    .await?
            }
        };
        if let Err(err) = disk.put_index_entry(e) {
            tracing::debug!("remote hit not indexed locally: {err}");
        }
        Some((*e, path))
    }

    /// Streams the object into a pending local output; commits only if it verifies.
    async fn download(&self, out: OutputId, size: u64) -> Option<PathBuf> {
        let mut pending = match self.disk().begin_put(&out, size) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("remote download: {e}");
                return None;
            }
        };
        match self
            .remote()
            .fetch_object(&out, size, &mut pending, Check::BySink)
            .await
        {
            Ok(true) => self.commit_download(pending, &out, ""),
            Ok(false) => None,
            Err(e) => {
                if e.kind() == sgcache_store::ErrorKind::Corrupt {
                    lock(&self.inner.corrupt).insert(out);
                }
                tracing::debug!("remote object {}: {e}", out.short());
                None
            }
        }
    }

    /// Commits a downloaded object (alone, or from a pack: `from` says which in the warning):
    /// `Some(path)` if it verified against `out`. Otherwise nothing is left of it, a wrong
    /// length or hash is counted as a corrupt object and remembered (a later upload of the
    /// verified bytes overwrites it), and one warning line says so.
    pub(crate) fn commit_download(
        &self,
        pending: PendingPut,
        out: &OutputId,
        from: &str,
    ) -> Option<PathBuf> {
        match pending.commit() {
            Ok(p) => Some(p),
            Err(e) => {
                let detail = match &e {
                    sgcache_disk::Error::HashMismatch { got, .. } => {
                        Some(format!("its SHA-256 is {}…", &got[..12.min(got.len())]))
                    }
                    sgcache_disk::Error::SizeMismatch { expected, got, .. } => {
                        Some(format!("{got} bytes where the entry says {expected}"))
                    }
                    _ => None,
                };
                match detail {
                    Some(d) => {
                        self.remote().metrics().remote_corrupt_objects.inc();
                        lock(&self.inner.corrupt).insert(*out);
                        tracing::warn!(
                            "remote object {}{from} failed verification ({d}); not used",
                            out.short()
                        );
                    }
                    None => tracing::debug!("remote object {}{from}: {e}", out.short()),
                }
                None
            }
        }
    }
}
