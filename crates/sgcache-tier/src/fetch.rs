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
use sgcache_store::{Check, Lookup, RemoteCache, SingleFlight, UploadJob, UploadQueue};
use sgcache_types::{ActionId, IndexEntry, OutputId};

use crate::local_state::{self, KNOWLEDGE_TTL, Outage, RecentIds, UPLOADED_TTL};
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
    /// Entries the go command put through this process, by output (at most
    /// [`PUT_MEMORY`]): a corrupt remote copy found after the put is healed from them.
    put: Mutex<HashMap<OutputId, IndexEntry>>,
    /// Queues the upload that overwrites a corrupt remote object with the local output.
    healer: std::sync::OnceLock<Healer>,
    /// Actions with a conflict counted (each once).
    conflicted: Mutex<HashSet<ActionId>>,
    conflict_warned: AtomicBool,
    /// Actions the remote recently did not have (shared with the machine's other processes).
    negative: RecentIds,
    /// Entries this machine recently uploaded (shared likewise).
    uploaded: RecentIds,
    /// The outage recorded when this fetcher started, if any.
    outage_at_start: Option<Outage>,
    /// Manifest loads in flight, and a wake-up when one ends: a lookup that starts meanwhile
    /// races its entry request against the manifest, which is already on its way.
    loading: std::sync::atomic::AtomicUsize,
    loaded: tokio::sync::Notify,
    /// Bytes that downloads (objects and packs) may be writing at once, in MiB: with the
    /// largest claim bounded by the remote's maximum object size, a lying remote cannot make
    /// prefetch fill the disk with many huge downloads at a time.
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// The bound on bytes being downloaded at once, in MiB.
const IN_FLIGHT_MIB: u32 = 2048;

/// Entries put through one process that [`Fetcher`] remembers for healing (about 100 bytes
/// each); past it the memory starts over.
const PUT_MEMORY: usize = 100_000;

struct Healer(Box<dyn Fn(IndexEntry, PathBuf) + Send + Sync>);

impl std::fmt::Debug for Healer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Healer")
    }
}

/// Remote lookups into one local tier. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

impl Fetcher {
    /// A fetcher writing verified remote hits into `disk`. It starts from, and from then on
    /// shares, what this machine knows about the remote in `disk`'s state directory: whether
    /// it is down, and which keys it recently did not have (see [`crate::local_state`]).
    pub fn new(remote: RemoteCache, disk: Arc<DiskCache>) -> Fetcher {
        let state = sgcache_disk::layout::state_dir(disk.dir());
        let cfg = remote.config();
        let outage_at_start = local_state::share_outage(
            local_state::outage_path(&state, cfg),
            sgcache_store::mask_url(&cfg.url),
            remote.breaker(),
        );
        if let Some(o) = &outage_at_start
            && o.active(std::time::SystemTime::now())
        {
            tracing::debug!("remote down since {}, skipped", o.since());
        }
        let negative = RecentIds::load(local_state::negative_path(&state, cfg), KNOWLEDGE_TTL);
        let uploaded = RecentIds::load(local_state::uploaded_path(&state, cfg), UPLOADED_TTL);
        Fetcher {
            inner: Arc::new(Inner {
                remote,
                disk,
                downloads: SingleFlight::new(),
                lookups: SingleFlight::new(),
                known: Mutex::default(),
                corrupt: Mutex::default(),
                put: Mutex::default(),
                healer: std::sync::OnceLock::new(),
                conflicted: Mutex::default(),
                conflict_warned: AtomicBool::new(false),
                negative,
                uploaded,
                outage_at_start,
                in_flight: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_MIB as usize)),
                loading: std::sync::atomic::AtomicUsize::new(0),
                loaded: tokio::sync::Notify::new(),
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

    /// Runs `load` (a manifest load) so that lookups starting meanwhile can use its records:
    /// each races its own entry request against it.
    pub(crate) async fn loading_manifest<T>(
        &self,
        load: impl std::future::Future<Output = T>,
    ) -> T {
        use std::sync::atomic::Ordering::SeqCst;
        self.inner.loading.fetch_add(1, SeqCst);
        // Decrement and wake even if `load` is cancelled (an aborted prefetch).
        struct Done<'a>(&'a Inner);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0
                    .loading
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                self.0.loaded.notify_waiters();
            }
        }
        let _done = Done(&self.inner);
        load.await
    }

    /// The trusted record of `action` once the manifest loads in flight have ended, if one
    /// named it (`None` at once when none is loading).
    async fn known_after_loads(&self, action: &ActionId) -> Option<IndexEntry> {
        use std::sync::atomic::Ordering::SeqCst;
        loop {
            let woken = self.inner.loaded.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(r) = lock(&self.inner.known).get(action).copied() {
                return Some(r);
            }
            if self.inner.loading.load(SeqCst) == 0 {
                return None;
            }
            woken.await;
        }
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
        self.inner.negative.remove(e.action.as_bytes());
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
        {
            let mut put = lock(&self.inner.put);
            if put.len() >= PUT_MEMORY {
                put.clear();
            }
            put.insert(e.output, *e);
        }
        lock(&self.inner.corrupt).contains(&e.output)
    }

    /// Sets what to do when a remote object this process's go command already put turns out
    /// corrupt (the put's upload found the object present and skipped it): `f` gets the
    /// entry and the local output's path, and queues a healing upload.
    pub fn on_corrupt_put(&self, f: impl Fn(IndexEntry, PathBuf) + Send + Sync + 'static) {
        let _ = self.inner.healer.set(Healer(Box::new(f)));
    }

    /// Connects this fetcher to the queue that uploads the go command's puts: each upload is
    /// remembered (so an unchanged put is not uploaded again soon, see
    /// [`Fetcher::recently_uploaded`]), and a corrupt remote object found after its put is
    /// overwritten through the queue. Both the in-process tier and the daemon call this once.
    pub fn attach_uploads(&self, uploads: &UploadQueue) {
        let f = self.clone();
        uploads.on_uploaded(move |e| f.note_uploaded(e));
        let q = uploads.clone();
        self.on_corrupt_put(move |entry, path| {
            let _ = q.enqueue(UploadJob {
                entry,
                path,
                heal: true,
            });
        });
    }

    /// Remembers that the remote copy of `out` failed verification, and heals it if the go
    /// command already put the output here.
    fn found_corrupt(&self, out: OutputId) {
        if !lock(&self.inner.corrupt).insert(out) {
            return;
        }
        let put = lock(&self.inner.put).get(&out).copied();
        if let (Some(e), Some(heal)) = (put, self.inner.healer.get()) {
            (heal.0)(e, self.disk().output_path(&out));
        }
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

    /// Whether the remote recently did not have `action` (a definite miss, not a failure).
    pub fn known_missing(&self, action: &ActionId) -> bool {
        self.inner.negative.contains(action.as_bytes())
    }

    /// Takes in the never-stored keys a trusted manifest lists: lookups of them are misses
    /// without a request, for as long as the negative cache believes anything.
    pub fn learn_misses(&self, misses: &[ActionId]) {
        for a in misses {
            if !self.inner.negative.contains(a.as_bytes()) {
                self.inner.negative.insert(a.to_bytes());
            }
        }
    }

    /// Whether this machine uploaded exactly `e` within the last hour (the go command puts
    /// some entries again, unchanged, on every build).
    pub fn recently_uploaded(&self, e: &IndexEntry) -> bool {
        self.inner.uploaded.contains(&local_state::uploaded_id(e))
    }

    /// Records that `e` was uploaded.
    pub fn note_uploaded(&self, e: &IndexEntry) {
        self.inner.uploaded.insert(local_state::uploaded_id(e));
    }

    /// The outage this fetcher started from, if the remote was recorded down.
    pub fn outage_at_start(&self) -> Option<&Outage> {
        self.inner.outage_at_start.as_ref()
    }

    /// Looks up the action entry (unless the remote recently did not have it), then fetches
    /// what it names.
    async fn fetch(&self, action: ActionId) -> Option<Hit> {
        if self.inner.negative.contains(action.as_bytes()) {
            self.remote().metrics().remote_negative_hits.inc();
            return None;
        }
        let entry = self.remote().get_entry(&action);
        tokio::pin!(entry);
        // At the start of a build the go command's first gets arrive while the manifest is
        // still loading: whichever names the action first, the manifest (already on its way)
        // or the entry, decides; the other is dropped.
        let looked_up = if self.inner.loading.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            tokio::select! {
                e = &mut entry => e,
                Some(r) = self.known_after_loads(&action) => {
                    return match self.fetch_known(&r).await {
                        Some(hit) => Some(hit),
                        None => self.fetch_entry_only(action).await,
                    };
                }
            }
        } else {
            entry.await
        };
        self.after_entry(action, looked_up).await
    }

    /// The plain path: the entry, then what it names.
    async fn fetch_entry_only(&self, action: ActionId) -> Option<Hit> {
        let looked_up = self.remote().get_entry(&action).await;
        self.after_entry(action, looked_up).await
    }

    async fn after_entry(&self, action: ActionId, looked_up: Lookup<IndexEntry>) -> Option<Hit> {
        let e = match looked_up {
            Lookup::Found(e) => e,
            Lookup::Missing => {
                self.inner.negative.insert(action.to_bytes());
                return None;
            }
            Lookup::Failed => return None,
        };
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

    /// Reserves room for a download of `bytes` (waits while others hold the bound).
    pub(crate) async fn reserve(&self, bytes: u64) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let mib = bytes.div_ceil(1 << 20).clamp(1, u64::from(IN_FLIGHT_MIB)) as u32;
        self.inner
            .in_flight
            .clone()
            .acquire_many_owned(mib)
            .await
            .ok()
    }

    /// Streams the object into a pending local output; commits only if it verifies.
    async fn download(&self, out: OutputId, size: u64) -> Option<PathBuf> {
        let _room = self.reserve(size).await?;
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
                    self.found_corrupt(out);
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
                        self.found_corrupt(*out);
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
