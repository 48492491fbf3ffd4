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
//! Concurrent lookups of the same action share one lookup, and lookups that need the same
//! object share one download.
//!
//! Prefetch: a run records the actions it used (hits and puts); at the end it stores them as
//! the *manifest* of its build context. The next run in that context loads the manifest at
//! start and, in the background and with high concurrency, looks up every listed action the
//! local tier lacks, exactly as a get would (same namespaces, signatures and verification).
//! A get for an action being prefetched joins that lookup instead of starting another, so
//! the go command's requests, which arrive a few at a time in dependency order, find their
//! entries local or already on the way. Prefetch never delays the handshake or a local hit.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sgcache_disk::{DiskCache, Entry, Id};
use sgcache_store::{Manifest, ManifestRecord, PackRef, Remote, RemoteEntry, SingleFlight};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Lookups prefetch keeps in flight against a remote at local speed, where it is bound by
/// CPU (hashing, writing) shared with the go command: more only adds contention (measured:
/// `go build std` at 0 ms, 32 → 64 in flight cost 15% more wall time).
const PREFETCH_CONCURRENCY_NEAR: usize = 32;
/// ... and against a remote with a round trip of at least [`FAR_RTT`], where it is bound by
/// latency (at 20 ms per request, 32 → 96 in flight cut the prefetch-bound build by ~20%).
const PREFETCH_CONCURRENCY_FAR: usize = 96;
/// How long loading the manifest (one request, first on its connection) must take for the
/// remote to count as far (on loopback it takes ~5 ms: connection set-up and ~100 KiB).
const FAR_RTT: Duration = Duration::from_millis(12);
/// Prefetch starts no new lookup after this long.
const PREFETCH_TIME: Duration = Duration::from_secs(120);
/// Packs prefetch keeps in flight against a remote at local speed, and a far one.
const PACKS_NEAR: usize = 4;
const PACKS_FAR: usize = 16;
/// Prefetch stops after this many bytes.
const PREFETCH_BYTES: u64 = 8 << 30;

pub(crate) type Found = Option<(Entry, PathBuf)>;

/// Actions used, in order of first use, with what they produced: the manifest's records.
pub(crate) type Used = (Vec<ManifestRecord>, std::collections::HashSet<Id>);

/// The manifest record of `action` and its local entry.
pub(crate) fn record(action: Id, e: &Entry) -> ManifestRecord {
    ManifestRecord {
        action,
        entry: RemoteEntry {
            output_id: e.output_id,
            size: e.size,
            time_nanos: e.time_nanos,
        },
    }
}

pub(crate) fn note(used: &Mutex<Used>, r: ManifestRecord) {
    let mut g = used.lock().unwrap_or_else(|p| p.into_inner());
    if g.1.insert(r.action) {
        g.0.push(r);
    }
}

/// What every lookup of one process shares: the remote, the local tier, and the
/// single-flight maps, so concurrent lookups of one action (from this run, its prefetch or,
/// in the daemon, another go command) share one lookup and one download.
#[derive(Debug, Clone)]
pub struct Fetcher {
    remote: Remote,
    disk: Arc<DiskCache>,
    downloads: Arc<SingleFlight<Id, Option<PathBuf>>>,
    lookups: Arc<SingleFlight<Id, Found>>,
    /// Records of the verified manifests loaded so far, by action: a get for one of them
    /// fetches its output directly, like prefetch does.
    known: Arc<Mutex<std::collections::HashMap<Id, ManifestRecord>>>,
}

impl Fetcher {
    /// A fetcher writing verified remote hits into `disk`.
    pub fn new(remote: Remote, disk: Arc<DiskCache>) -> Fetcher {
        Fetcher {
            remote,
            disk,
            downloads: Arc::new(SingleFlight::new()),
            lookups: Arc::new(SingleFlight::new()),
            known: Arc::default(),
        }
    }

    /// The remote.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// The local tier.
    pub fn disk(&self) -> &Arc<DiskCache> {
        &self.disk
    }

    /// Looks `action` up remotely; on a verified hit the entry is in the local tier when
    /// this returns.
    pub async fn lookup(&self, action: Id) -> Found {
        let known = self
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&action)
            .copied();
        if let Some(r) = known {
            return self.lookup_known(r).await;
        }
        let this = self.clone();
        self.lookups
            .run(action, async move {
                fetch(&this.remote, &this.downloads, this.disk.clone(), action).await
            })
            .await
    }

    /// Looks up `r.action` knowing, from a verified manifest, what it produced: fetches the
    /// output alone (one request instead of two) and indexes it; if the object is gone, falls
    /// back to a plain lookup. Shares the single-flight maps with [`Fetcher::lookup`].
    pub async fn lookup_known(&self, r: ManifestRecord) -> Found {
        let this = self.clone();
        self.lookups
            .run(r.action, async move {
                match fetch_known(&this.remote, &this.downloads, &this.disk, &r).await {
                    Some(found) => Some(found),
                    None => fetch(&this.remote, &this.downloads, this.disk.clone(), r.action).await,
                }
            })
            .await
    }

    /// Loads the manifest `name` into `previous` and fetches what the local tier lacks:
    /// its packs, then whatever is still missing one by one.
    pub(crate) async fn prefetch(
        &self,
        name: Id,
        previous: Arc<Mutex<Manifest>>,
        counts: Arc<PrefetchCounts>,
    ) {
        let asked = Instant::now();
        let manifest = self.remote.get_manifest(&name).await;
        let far = asked.elapsed() >= FAR_RTT;
        let concurrency = if far {
            PREFETCH_CONCURRENCY_FAR
        } else {
            PREFETCH_CONCURRENCY_NEAR
        };
        tracing::debug!(
            "prefetch: manifest of {} records and {} packs in {:?}; {concurrency} lookups in flight",
            manifest.records.len(),
            manifest.packs.len(),
            asked.elapsed()
        );
        counts.manifest_entries.store(
            manifest.records.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        *previous.lock().unwrap_or_else(|p| p.into_inner()) = manifest.clone();
        let Manifest { records, packs } = manifest;
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(records.iter().map(|r| (r.action, *r)));
        if !packs.is_empty() && self.remote.config().packs {
            let in_flight = if far { PACKS_FAR } else { PACKS_NEAR };
            self.fetch_packs(&records, packs, in_flight, &counts).await;
            if counts
                .packs_missing
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
            {
                // Some expired: the next manifest gets all its packs rebuilt.
                previous
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .packs
                    .clear();
            }
        }
        prefetch_all(self.clone(), records, concurrency, counts).await;
    }

    /// Fetches `packs`, `in_flight` at a time, keeping the outputs of `records` the local
    /// tier lacks (see [`crate::pack`]).
    async fn fetch_packs(
        &self,
        records: &[ManifestRecord],
        packs: Vec<PackRef>,
        in_flight: usize,
        counts: &Arc<PrefetchCounts>,
    ) {
        let wanted = crate::pack::wanted(&self.disk, records);
        if wanted.is_empty() {
            return;
        }
        let wanted = Arc::new(Mutex::new(wanted));
        let sem = Arc::new(tokio::sync::Semaphore::new(in_flight));
        let mut set = tokio::task::JoinSet::new();
        let (started, mut bytes) = (Instant::now(), 0u64);
        for p in packs {
            // The same bounds as the lookups below; what a bound leaves out, gets fetch.
            if wanted.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
                || started.elapsed() > PREFETCH_TIME
                || bytes > PREFETCH_BYTES
            {
                break;
            }
            bytes += p.len;
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            let (this, wanted, counts) = (self.clone(), wanted.clone(), counts.clone());
            set.spawn(async move {
                crate::pack::fetch_pack(
                    &this.remote,
                    &this.disk,
                    &this.downloads,
                    &wanted,
                    &p,
                    &counts,
                )
                .await;
                drop(permit);
            });
            while set.try_join_next().is_some() {}
        }
        while set.join_next().await.is_some() {}
    }
}

/// The remote tier plus the runtime it runs on, for one run served in-process.
#[derive(Debug)]
pub struct RemoteTier {
    fetcher: Fetcher,
    rt: Runtime,
    inflight: Mutex<Vec<JoinHandle<()>>>,
    /// The build context's manifest name, when manifests are on.
    manifest: Option<Id>,
    /// Actions this run used, in order of first use.
    served: Arc<Mutex<Used>>,
    /// The manifest loaded at start.
    previous: Arc<Mutex<Manifest>>,
    prefetch: Mutex<Option<JoinHandle<()>>>,
    /// Lookups prefetch started, how many found their entry; gets that waited.
    prefetch_counts: Arc<PrefetchCounts>,
}

/// Prefetch counters, and how long gets waited on the remote.
#[derive(Debug, Default)]
pub(crate) struct PrefetchCounts {
    pub(crate) manifest_entries: std::sync::atomic::AtomicU64,
    /// Outputs prefetch took from packs.
    pub(crate) pack_objects: std::sync::atomic::AtomicU64,
    /// Packs the manifest listed that the remote no longer has; when not 0, the manifest is
    /// stored again (with rebuilt packs) even if its records did not change.
    pub(crate) packs_missing: std::sync::atomic::AtomicU64,
    pub(crate) started: std::sync::atomic::AtomicU64,
    pub(crate) found: std::sync::atomic::AtomicU64,
    /// Gets whose reply waited on the remote (a local miss looked up remotely, including
    /// one that joined a prefetch lookup in flight), and their total wait.
    pub(crate) get_waits: std::sync::atomic::AtomicU64,
    pub(crate) get_wait_us: Arc<std::sync::atomic::AtomicU64>,
}

impl PrefetchCounts {
    /// Whether prefetch found packs missing (then the next manifest stored must rebuild its
    /// packs).
    pub(crate) fn repack(&self) -> bool {
        self.packs_missing
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    }

    pub(crate) fn counters(&self) -> [(&'static str, u64); 7] {
        use std::sync::atomic::Ordering::Relaxed;
        [
            (
                "prefetch_manifest_entries",
                self.manifest_entries.load(Relaxed),
            ),
            ("prefetch_pack_objects", self.pack_objects.load(Relaxed)),
            ("prefetch_packs_missing", self.packs_missing.load(Relaxed)),
            ("prefetch_lookups", self.started.load(Relaxed)),
            ("prefetch_found", self.found.load(Relaxed)),
            ("get_remote_waits", self.get_waits.load(Relaxed)),
            ("get_remote_wait_ms", self.get_wait_us.load(Relaxed) / 1000),
        ]
    }
}

/// The runtime remote work runs on: few threads, because the work is I/O and the go
/// command needs the cores.
pub(crate) fn runtime(name: &str) -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
}

impl RemoteTier {
    /// Starts the runtime (two worker threads).
    pub fn new(remote: Remote, disk: Arc<DiskCache>) -> std::io::Result<RemoteTier> {
        Ok(RemoteTier {
            fetcher: Fetcher::new(remote, disk),
            rt: runtime("sgcache-remote")?,
            inflight: Mutex::new(Vec::new()),
            manifest: None,
            served: Arc::new(Mutex::new(Default::default())),
            previous: Arc::default(),
            prefetch: Mutex::new(None),
            prefetch_counts: Arc::default(),
        })
    }

    /// Turns on manifests for the build context `name`; with `prefetch`, starts fetching
    /// what the last runs in this context used.
    pub fn with_manifest(mut self, name: Id, prefetch: bool) -> Self {
        self.manifest = Some(name);
        if prefetch {
            let (fetcher, previous) = (self.fetcher.clone(), self.previous.clone());
            let counts = self.prefetch_counts.clone();
            let task = self
                .rt
                .spawn(async move { fetcher.prefetch(name, previous, counts).await });
            *self.prefetch.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        }
        self
    }

    /// Counters for the stats file and the summary line: the remote's, then prefetch's.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut v = self.fetcher.remote.counters();
        v.extend(self.prefetch_counts.counters());
        v
    }

    /// Records that this run used `action`, which produced `entry` (for the manifest).
    pub fn note_used(&self, action: Id, entry: &Entry) {
        if self.manifest.is_some() {
            note(&self.served, record(action, entry));
        }
    }

    /// [`RemoteTier::note_used`] for a ready-made record.
    pub(crate) fn note_record(&self, r: ManifestRecord) {
        if self.manifest.is_some() {
            note(&self.served, r);
        }
    }

    /// Looks `action` up remotely in the background and calls `done` with the local
    /// entry and path on a verified hit, or `None`.
    pub fn lookup(&self, action: Id, done: impl FnOnce(Found) + Send + 'static) {
        let fetcher = self.fetcher.clone();
        let used = self.manifest.is_some().then(|| self.served.clone());
        let c = &self.prefetch_counts;
        c.get_waits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (waited, since) = (c.get_wait_us.clone(), Instant::now());
        let task = self.rt.spawn(async move {
            let found = fetcher.lookup(action).await;
            if let (Some(used), Some((e, _))) = (&used, &found) {
                note(used, record(action, e));
            }
            waited.fetch_add(
                since.elapsed().as_micros() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            done(found);
        });
        let mut v = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() >= 64 {
            v.retain(|h| !h.is_finished());
        }
        v.push(task);
    }

    /// Queues the upload of a fresh local entry (from any thread).
    pub fn upload(&self, action: Id, out: Id, size: u64, time_nanos: i64, path: PathBuf) {
        let _rt = self.rt.enter();
        self.fetcher
            .remote
            .enqueue_upload(action, out, size, time_nanos, path);
    }

    /// Stops prefetching, waits for lookups in flight, stores the manifest, then waits for
    /// queued uploads up to the deadline.
    pub fn finish(&self) -> sgcache_store::DrainReport {
        if let Some(p) = self
            .prefetch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            p.abort();
        }
        let tasks = std::mem::take(&mut *self.inflight.lock().unwrap_or_else(|p| p.into_inner()));
        let manifest = self.manifest.map(|name| {
            let served = self.served.lock().unwrap_or_else(|p| p.into_inner());
            let previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
            (
                name,
                merge_manifest(&served, &previous.records, self.prefetch_counts.repack()),
                previous.clone(),
            )
        });
        let remote = &self.fetcher.remote;
        self.rt.block_on(async {
            for t in tasks {
                let _ = t.await;
            }
            if let Some((name, list, previous)) = manifest
                && !list.is_empty()
            {
                store_manifest(remote, &self.fetcher.disk, &name, list, &previous).await;
            }
            remote.drain().await
        })
    }
}

/// Stores the manifest `list` (with packs of its outputs, when packs are on: see
/// [`crate::pack`]), all bounded by the upload deadline; returns what was stored. Failures
/// only cost prefetch later.
pub(crate) async fn store_manifest(
    remote: &Remote,
    disk: &Arc<DiskCache>,
    name: &Id,
    list: Vec<ManifestRecord>,
    previous: &Manifest,
) -> Manifest {
    let cfg = remote.config();
    if cfg.mode == sgcache_store::Mode::ReadOnly || remote.is_disabled() {
        return previous.clone();
    }
    let work = async {
        let packs = if cfg.packs {
            crate::pack::store_packs(remote, disk, &list, previous).await
        } else {
            Vec::new()
        };
        let m = Manifest {
            records: list,
            packs,
        };
        remote
            .put_manifest(name, &m.records, &m.packs)
            .await
            .map(|()| m)
    };
    match tokio::time::timeout(cfg.upload_deadline, work).await {
        Ok(Ok(m)) => return m,
        Ok(Err(e)) => tracing::debug!("remote: storing the manifest: {e}"),
        Err(_) => tracing::debug!("remote: storing the manifest timed out"),
    }
    previous.clone()
}

/// The manifest to store: this run's actions first, then the previous manifest's others,
/// capped; empty when there is nothing new to store (and its packs need no `repack`).
pub(crate) fn merge_manifest(
    served: &Used,
    previous: &[ManifestRecord],
    repack: bool,
) -> Vec<ManifestRecord> {
    if served.0.is_empty() {
        return Vec::new();
    }
    let mut list = served.0.clone();
    list.extend(previous.iter().filter(|r| !served.1.contains(&r.action)));
    list.truncate(sgcache_store::MANIFEST_MAX);
    if list == previous && !repack {
        // Same actions in the same order: nothing to store.
        return Vec::new();
    }
    list
}

async fn prefetch_all(
    fetcher: Fetcher,
    list: Vec<ManifestRecord>,
    concurrency: usize,
    counts: Arc<PrefetchCounts>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    let mut queued = 0usize;
    for r in list {
        if started.elapsed() > PREFETCH_TIME || bytes.load(Relaxed) > PREFETCH_BYTES {
            break;
        }
        let disk = &fetcher.disk;
        if matches!(disk.get(&r.action), Ok(Some(e)) if disk.find_output(&e.output_id, e.size).is_some())
        {
            continue;
        }
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let (fetcher, bytes, counts) = (fetcher.clone(), bytes.clone(), counts.clone());
        queued += 1;
        counts.started.fetch_add(1, Relaxed);
        set.spawn(async move {
            if let Some((e, _)) = fetcher.lookup_known(r).await {
                bytes.fetch_add(e.size, Relaxed);
                counts.found.fetch_add(1, Relaxed);
            }
            drop(permit);
        });
        while set.try_join_next().is_some() {}
    }
    while set.join_next().await.is_some() {}
    tracing::debug!("prefetch: {queued} lookups in {:?}", started.elapsed());
}

/// Looks up the action entry (namespaces, signature), then fetches what it names.
async fn fetch(
    remote: &Remote,
    downloads: &SingleFlight<Id, Option<PathBuf>>,
    disk: Arc<DiskCache>,
    action: Id,
) -> Found {
    let entry = remote.get_action(&action).await?;
    fetch_known(remote, downloads, &disk, &ManifestRecord { action, entry }).await
}

/// Fetches what a verified action entry or manifest record (trusted exactly like the entry
/// itself) names: the output is found locally or downloaded (verified against its id), then
/// indexed. `None` if the object could not be had.
async fn fetch_known(
    remote: &Remote,
    downloads: &SingleFlight<Id, Option<PathBuf>>,
    disk: &Arc<DiskCache>,
    r: &ManifestRecord,
) -> Found {
    let RemoteEntry {
        output_id: out,
        size,
        time_nanos,
    } = r.entry;
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
    if let Err(err) = disk.put_index_entry(&r.action, &out, size, time_nanos) {
        tracing::debug!("remote hit not indexed locally: {err}");
    }
    let entry = Entry {
        output_id: out,
        size,
        time_nanos,
    };
    Some((entry, path))
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
    // `PendingPut` hashes what it is given and commits only if it matches `out`, so the
    // store need not hash the same bytes again.
    match remote
        .fetch_object_into_checking_sink(&out, size, &mut pending)
        .await
    {
        Ok(true) => commit_download(remote, pending, &out, ""),
        Ok(false) => None,
        Err(e) => {
            tracing::debug!("remote object {}: {e}", crate::serve::short_hex(&out));
            None
        }
    }
}

/// Commits a downloaded object (alone, or from a pack: `from` says which in the warning):
/// `Some(path)` if it verified against `out`; otherwise nothing is left of it, a wrong
/// length or hash is counted as a corrupt object, and one warning line says so.
pub(crate) fn commit_download(
    remote: &Remote,
    pending: sgcache_disk::PendingPut,
    out: &Id,
    from: &str,
) -> Option<PathBuf> {
    match pending.commit() {
        Ok(p) => Some(p),
        Err(e) => {
            if matches!(
                e,
                sgcache_disk::Error::HashMismatch { .. } | sgcache_disk::Error::SizeMismatch { .. }
            ) {
                remote.count_corrupt();
            }
            tracing::warn!(
                "remote object {}{from} rejected: {e}",
                crate::serve::short_hex(out)
            );
            None
        }
    }
}

/// The in-process remote tier for `cfg`, or `None` without a remote or when the remote is
/// misconfigured (said once; the build then runs on the local tier alone).
pub fn in_process(cfg: &crate::config::Config, disk: Arc<DiskCache>) -> Option<RemoteTier> {
    let rc = cfg.remote.as_ref()?;
    let remote = match Remote::new(rc.clone()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("remote disabled: {e}");
            return None;
        }
    };
    match RemoteTier::new(remote, disk) {
        Ok(t) => Some(t.with_manifest(cfg.manifest, cfg.prefetch)),
        Err(e) => {
            tracing::warn!("remote disabled: starting its runtime: {e}");
            None
        }
    }
}
