//! [`Session`]: one build context's life with the remote — load the previous manifest,
//! prefetch what it lists, and at the end of each run merge what the run used and store the
//! next manifest (with packs).
//!
//! One type serves both the in-process path (one session per run) and the daemon (one
//! session per build context, shared by every go command of that context, living as long as
//! the daemon). The rules are the same in both:
//!
//! - The previous manifest is loaded once: by prefetch when it starts, else lazily by the
//!   first store.
//! - Stores are serialized, so concurrent runs of one context accumulate instead of
//!   overwriting each other; each merges with what the last store wrote.
//! - A manifest is stored only if this session could read the previous one (a failed read
//!   would make us overwrite a good manifest with a partial one, and costs an upload while
//!   the remote is failing) and the breaker is closed. A skip is counted
//!   (`manifests_skipped`).
//! - If prefetch found packs the remote no longer has, the next store rebuilds all packs,
//!   even if the records did not change; once stored, that need is cleared. This is control
//!   state of the session, not a metric.
//!
//! Prefetch: the manifest's packs first (4 in flight near, 16 far), then every record whose
//! output the local tier still lacks, one lookup each (32 in flight near, 96 far; "far" when
//! loading the manifest took 12 ms or more). Lookups go through the [`Fetcher`], so a get for
//! an action being prefetched joins it. Prefetch stops after 2 minutes or 8 GiB.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sgcache_store::Trust;
use sgcache_store::format::manifest;
use sgcache_store::layers::BreakerPosition;
use sgcache_store::{Lookup, Manifest, ManifestName, Mode, PackRef, RemoteConfig};
use sgcache_types::{ActionId, IndexEntry, OutputId};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::fetch::Fetcher;
use crate::local_state::{self, KNOWLEDGE_TTL};
use crate::lock;
use crate::pack::{self, PackOutcome};
use crate::used::UsedActions;

/// Lookups prefetch keeps in flight against a remote at local speed, where it is bound by
/// CPU (hashing, writing) shared with the go command: more only adds contention (measured:
/// `go build std` at 0 ms, 32 → 64 in flight cost 15% more wall time).
const LOOKUPS_NEAR: usize = 32;
/// ... and against a remote with a round trip of at least [`FAR_RTT`], where it is bound by
/// latency (at 20 ms per request, 32 → 96 in flight cut the prefetch-bound build by ~20%).
const LOOKUPS_FAR: usize = 96;
/// How long loading the manifest (one request, first on its connection) must take for the
/// remote to count as far (on loopback it takes ~5 ms: connection set-up and ~100 KiB).
const FAR_RTT: Duration = Duration::from_millis(12);
/// Packs in flight against a remote at local speed, and a far one.
const PACKS_NEAR: usize = 4;
const PACKS_FAR: usize = 16;
/// Prefetch starts nothing new after this long...
const PREFETCH_TIME: Duration = Duration::from_secs(120);
/// ... or after this many bytes.
const PREFETCH_BYTES: u64 = 8 << 30;

/// Whether the previous manifest has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    NotYet,
    /// Read (found, or known absent).
    Read,
    /// The remote failed: nothing is known about the previous manifest.
    Failed,
}

#[derive(Debug)]
struct State {
    previous: Manifest,
    load: Load,
    /// Prefetch found packs missing or corrupt: the next store rebuilds every pack.
    repack: bool,
    /// Packs found corrupt: rebuilt, they overwrite the remote's copy.
    corrupt_packs: HashSet<OutputId>,
}

/// What a store at the end of a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A manifest was stored.
    Stored,
    /// Nothing new to store (no actions, or the same as the previous manifest).
    Unchanged,
    /// This job does not write the remote.
    ReadOnly,
    /// Skipped: the previous manifest could not be read, or the remote is failing.
    Skipped,
    /// The store failed or ran out of time.
    Failed,
}

/// One build context's session with the remote. Share it as `Arc<Session>`.
#[derive(Debug)]
pub struct Session {
    name: ManifestName,
    fetcher: Fetcher,
    /// This machine's copy of the last manifest seen or stored (see `local_state`).
    copy: PathBuf,
    prefetch_packs: bool,
    state: Mutex<State>,
    prefetch: Mutex<Option<JoinHandle<()>>>,
    prefetching: AtomicBool,
    prefetched: Notify,
    writes: tokio::sync::Mutex<()>,
}

impl Session {
    /// A session for the build context `name`. Nothing happens until prefetch or a store.
    pub fn new(fetcher: Fetcher, name: ManifestName) -> Arc<Session> {
        let prefetch_packs = fetcher.remote().config().packs;
        let copy = local_state::manifest_copy_path(
            &sgcache_disk::layout::state_dir(fetcher.disk().dir()),
            fetcher.remote().config(),
            &name,
        );
        Arc::new(Session {
            name,
            fetcher,
            copy,
            prefetch_packs,
            state: Mutex::new(State {
                previous: Manifest::default(),
                load: Load::NotYet,
                repack: false,
                corrupt_packs: HashSet::new(),
            }),
            prefetch: Mutex::new(None),
            prefetching: AtomicBool::new(false),
            prefetched: Notify::new(),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// The build context's manifest name.
    pub fn name(&self) -> ManifestName {
        self.name
    }

    /// Starts prefetch on `rt` unless one is running (a finished one starts again: the
    /// manifest may have grown since). With `fresh`, the manifest is read from the remote
    /// even if this machine's copy is recent (an explicit `sgcache prefetch`).
    pub fn start_prefetch(self: &Arc<Self>, rt: &Handle, fresh: bool) {
        let mut p = lock(&self.prefetch);
        if p.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.prefetching.store(true, Ordering::SeqCst);
        let this = self.clone();
        *p = Some(rt.spawn(async move {
            this.run_prefetch(fresh).await;
            this.prefetching.store(false, Ordering::SeqCst);
            this.prefetched.notify_waiters();
        }));
    }

    /// Stops prefetch (the end of an in-process run).
    pub fn stop_prefetch(&self) {
        if let Some(t) = lock(&self.prefetch).take() {
            t.abort();
        }
        self.prefetching.store(false, Ordering::SeqCst);
        self.prefetched.notify_waiters();
    }

    /// Whether prefetch is running.
    pub fn is_prefetching(&self) -> bool {
        self.prefetching.load(Ordering::SeqCst)
    }

    /// Waits until prefetch has finished (at once if none runs).
    pub async fn prefetch_finished(&self) {
        loop {
            let n = self.prefetched.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if !self.is_prefetching() {
                return;
            }
            n.await;
        }
    }

    /// This machine's copy of the manifest, if it is younger than [`KNOWLEDGE_TTL`].
    fn fresh_copy(&self) -> Option<Manifest> {
        read_fresh_copy(&self.copy, &self.name)
    }

    /// Keeps `m` as this machine's copy of the manifest.
    fn save_copy(&self, m: &Manifest) {
        let bytes = manifest::encode(m, "local", &self.name, None);
        if let Err(e) = local_state::write_whole(&self.copy, &bytes) {
            tracing::debug!("keeping the manifest in `{}`: {e}", self.copy.display());
        }
    }

    /// Loads the previous manifest and returns it, and how long the request took: from this
    /// machine's recent copy unless `fresh` (no request: a warm build asks the remote
    /// nothing), else from the remote.
    async fn load(&self, fresh: bool) -> (Manifest, Duration) {
        if !fresh && let Some(m) = self.fresh_copy() {
            self.fetcher.learn(&m.records);
            self.fetcher.learn_misses(&m.misses);
            let mut st = lock(&self.state);
            st.previous = m;
            st.load = Load::Read;
            return (st.previous.clone(), Duration::ZERO);
        }
        let asked = Instant::now();
        // The records are learned before the load counts as ended, so lookups waiting on it
        // find them.
        let got = self
            .fetcher
            .loading_manifest(async {
                let got = self.fetcher.remote().get_manifest(&self.name).await;
                if let Lookup::Found(m) = &got {
                    self.fetcher.learn(&m.records);
                    self.fetcher.learn_misses(&m.misses);
                }
                got
            })
            .await;
        let took = asked.elapsed();
        match &got {
            Lookup::Found(m) => self.save_copy(m),
            Lookup::Missing => self.save_copy(&Manifest::default()),
            Lookup::Failed => {}
        }
        let mut st = lock(&self.state);
        match got {
            Lookup::Found(m) => {
                self.fetcher
                    .remote()
                    .metrics()
                    .prefetch_manifest_records
                    .add(m.records.len() as u64);
                st.previous = m;
                st.load = Load::Read;
            }
            Lookup::Missing => st.load = Load::Read,
            Lookup::Failed => {
                if st.load == Load::NotYet {
                    st.load = Load::Failed;
                }
            }
        }
        (st.previous.clone(), took)
    }

    async fn run_prefetch(&self, fresh: bool) {
        let (manifest, took) = self.load(fresh).await;
        // A copy took no time; judge the remote by its first request then.
        let far = took >= FAR_RTT;
        tracing::debug!(
            "prefetch: manifest of {} records and {} packs in {took:?}",
            manifest.records.len(),
            manifest.packs.len(),
        );
        let Manifest { records, packs, .. } = manifest;
        if records.is_empty() {
            return;
        }
        let started = Instant::now();
        if !packs.is_empty() && self.prefetch_packs {
            let in_flight = if far { PACKS_FAR } else { PACKS_NEAR };
            let (missing, corrupt) = self.fetch_packs(&records, packs, in_flight, started).await;
            if missing || !corrupt.is_empty() {
                // Some expired or are corrupt: the next manifest gets all its packs rebuilt,
                // and rebuilt corrupt ones overwrite the remote's copy.
                let mut st = lock(&self.state);
                st.repack = true;
                st.previous.packs.clear();
                st.corrupt_packs.extend(corrupt);
            }
        }
        let in_flight = if far { LOOKUPS_FAR } else { LOOKUPS_NEAR };
        self.lookup_all(records, in_flight, started).await;
    }

    /// Fetches `packs`, `in_flight` at a time, keeping the outputs of `records` the local
    /// tier lacks; says whether the remote no longer had some, and which were corrupt.
    async fn fetch_packs(
        &self,
        records: &[IndexEntry],
        packs: Vec<PackRef>,
        in_flight: usize,
        started: Instant,
    ) -> (bool, Vec<OutputId>) {
        let wanted = pack::wanted(self.fetcher.disk(), records);
        if wanted.is_empty() {
            return (false, Vec::new());
        }
        let wanted = Arc::new(Mutex::new(wanted));
        let sem = Arc::new(tokio::sync::Semaphore::new(in_flight));
        let mut set = tokio::task::JoinSet::new();
        let mut bytes = 0u64;
        let (mut missing, mut corrupt) = (false, Vec::new());
        let mut note = |r: Result<(OutputId, PackOutcome), tokio::task::JoinError>| match r {
            Ok((_, PackOutcome::Missing)) => missing = true,
            Ok((id, PackOutcome::Corrupt)) => corrupt.push(id),
            _ => {}
        };
        for p in packs {
            // The same bounds as the lookups; what a bound leaves out, gets fetch.
            if lock(&wanted).is_empty()
                || started.elapsed() > PREFETCH_TIME
                || bytes > PREFETCH_BYTES
            {
                break;
            }
            bytes += p.len;
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            let (fetcher, wanted) = (self.fetcher.clone(), wanted.clone());
            set.spawn(async move {
                let outcome = pack::fetch_pack(&fetcher, &wanted, &p).await;
                drop(permit);
                (p.id, outcome)
            });
            // Let it start before the next is spawned: a runtime runs the task spawned last
            // first (its LIFO slot), which would invert record order.
            tokio::task::yield_now().await;
            while let Some(r) = set.try_join_next() {
                note(r);
            }
        }
        while let Some(r) = set.join_next().await {
            note(r);
        }
        (missing, corrupt)
    }

    /// Looks up every record whose output the local tier lacks, `in_flight` at a time.
    async fn lookup_all(&self, records: Vec<IndexEntry>, in_flight: usize, started: Instant) {
        use std::sync::atomic::AtomicU64;
        let metrics = self.fetcher.remote().metrics().clone();
        let sem = Arc::new(tokio::sync::Semaphore::new(in_flight));
        let bytes = Arc::new(AtomicU64::new(0));
        let mut set = tokio::task::JoinSet::new();
        for r in records {
            if started.elapsed() > PREFETCH_TIME || bytes.load(Ordering::Relaxed) > PREFETCH_BYTES {
                break;
            }
            let disk = self.fetcher.disk();
            if matches!(disk.get(&r.action), Ok(Some(e)) if disk.find_output(&e.output, e.size).is_some())
            {
                continue;
            }
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            let (fetcher, bytes, metrics) = (self.fetcher.clone(), bytes.clone(), metrics.clone());
            metrics.prefetch_lookups.inc();
            set.spawn(async move {
                if let Some((e, _)) = fetcher.lookup_known(r).await {
                    bytes.fetch_add(e.size, Ordering::Relaxed);
                    metrics.prefetch_found.inc();
                }
                drop(permit);
            });
            tokio::task::yield_now().await;
            while set.try_join_next().is_some() {}
        }
        while set.join_next().await.is_some() {}
    }

    /// The end of a run: merges `used` with the last manifest and stores the result (with
    /// packs), within `deadline`. Serialized with the session's other stores.
    pub async fn store_run(&self, used: &UsedActions, deadline: Duration) -> Stored {
        if used.is_empty() && used.misses().next().is_none() {
            return Stored::Unchanged;
        }
        let remote = self.fetcher.remote();
        if !remote.writes() {
            return Stored::ReadOnly;
        }
        let until = tokio::time::Instant::now() + deadline;
        let _serial = match tokio::time::timeout_at(until, self.writes.lock()).await {
            Ok(g) => g,
            Err(_) => return Stored::Failed,
        };
        if lock(&self.state).load == Load::NotYet {
            let _ = tokio::time::timeout_at(until, self.load(false)).await;
        }
        let (previous, repack, load, heal) = {
            let st = lock(&self.state);
            (
                st.previous.clone(),
                st.repack,
                st.load,
                st.corrupt_packs.clone(),
            )
        };
        if load != Load::Read || remote.breaker().position() != BreakerPosition::Closed {
            remote.metrics().manifests_skipped.inc();
            tracing::debug!(
                "remote: manifest not stored (previous unread: {load:?}, or the remote is failing)"
            );
            return Stored::Skipped;
        }
        let fetcher = &self.fetcher;
        let Some(next) = merge(used, &previous, repack, |a| fetcher.known_missing(a)) else {
            return Stored::Unchanged;
        };
        let work = async {
            let packs = if remote.config().packs {
                pack::store_packs(remote, self.fetcher.disk(), &next.records, &previous, &heal)
                    .await
            } else {
                Vec::new()
            };
            let m = Manifest { packs, ..next };
            remote.put_manifest(&self.name, &m).await.map(|()| m)
        };
        match tokio::time::timeout_at(until, work).await {
            Ok(Ok(m)) => {
                remote.metrics().manifests_stored.inc();
                let mut st = lock(&self.state);
                if repack {
                    st.repack = false;
                    st.corrupt_packs.clear();
                }
                self.save_copy(&m);
                st.previous = m;
                Stored::Stored
            }
            Ok(Err(e)) => {
                tracing::debug!("remote: storing the manifest: {e}");
                Stored::Failed
            }
            Err(_) => {
                tracing::debug!("remote: storing the manifest ran out of time");
                Stored::Failed
            }
        }
    }
}

/// The manifest copy at `path`, if it is younger than [`KNOWLEDGE_TTL`].
fn read_fresh_copy(path: &Path, name: &ManifestName) -> Option<Manifest> {
    let md = std::fs::metadata(path).ok()?;
    if md.modified().ok()?.elapsed().ok()? >= KNOWLEDGE_TTL {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    // The copy is this machine's own file, trusted like the local tier.
    manifest::decode(&bytes, "local", name, &Trust::new(&[], None, "local")).ok()
}

/// Whether a run that only hit locally (`used`, no lookups) has nothing to store for the
/// build context `name`: what [`Session::store_run`] would conclude, decided from this
/// machine's recent copy of the manifest alone. True when the job does not write, or when
/// the copy is younger than [`KNOWLEDGE_TTL`] and lists every used action with the same
/// output ([`merge`] finds nothing new). False when there is no recent copy (the session
/// would load the manifest from the remote to know).
pub fn nothing_to_store(
    disk_dir: &Path,
    cfg: &RemoteConfig,
    name: &ManifestName,
    used: &[IndexEntry],
) -> bool {
    if used.is_empty() || cfg.mode == Mode::ReadOnly {
        return true;
    }
    let path =
        local_state::manifest_copy_path(&sgcache_disk::layout::state_dir(disk_dir), cfg, name);
    let Some(copy) = read_fresh_copy(&path, name) else {
        return false;
    };
    let run: UsedActions = used.iter().copied().collect();
    merge(&run, &copy, false, |_| false).is_none()
}

/// The manifest to store, without packs: this run's actions first, then the previous
/// manifest's others, capped; and the keys the context's builds never store (this run's
/// definite misses that it did not put, then the previous ones). `None` when there is
/// nothing new — every action this run used is in the previous manifest with the same output,
/// and every miss is listed already (the order a build uses its actions in varies from run to
/// run; rewriting the manifest for that alone would cost every warm build an upload) — unless
/// its packs need a `repack`. `missing` says which misses are definite (the remote answered
/// that it does not have them).
pub fn merge(
    used: &UsedActions,
    previous: &Manifest,
    repack: bool,
    missing: impl Fn(&ActionId) -> bool,
) -> Option<Manifest> {
    let run_misses: Vec<ActionId> = used.misses().copied().filter(|a| missing(a)).collect();
    if used.is_empty() && run_misses.is_empty() {
        return None;
    }
    if !repack {
        let known: std::collections::HashMap<_, _> = previous
            .records
            .iter()
            .map(|r| (r.action, r.output))
            .collect();
        let listed: HashSet<&ActionId> = previous.misses.iter().collect();
        if used
            .entries()
            .iter()
            .all(|e| known.get(&e.action) == Some(&e.output))
            && run_misses.iter().all(|a| listed.contains(a))
        {
            return None;
        }
    }
    let mut records = used.entries().to_vec();
    records.extend(
        previous
            .records
            .iter()
            .filter(|r| !used.contains(&r.action)),
    );
    records.truncate(manifest::MAX_RECORDS);
    let in_records: HashSet<ActionId> = records.iter().map(|r| r.action).collect();
    let mut seen = HashSet::new();
    let misses = run_misses
        .iter()
        .chain(previous.misses.iter())
        .filter(|a| !in_records.contains(a) && seen.insert(**a))
        .copied()
        .take(manifest::MAX_MISSES)
        .collect();
    Some(Manifest {
        records,
        packs: Vec::new(),
        misses,
    })
}
