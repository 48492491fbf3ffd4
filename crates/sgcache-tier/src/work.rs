//! [`RemoteWork`]: the one seam between the serve loop and the remote.
//!
//! The serve loop does every local get and put itself; only what involves the remote goes
//! through this trait: a lookup for a local miss, an upload after a put, the record of the
//! actions a run used (for the manifest), and the end of the run. The implementations:
//!
//! - [`LocalOnly`]: no remote; every lookup is a miss, answered at once.
//! - [`InProcess`]: the remote work of one run, on a small runtime of its own.
//! - the daemon client (in the binary): hands the work to the shared daemon over a socket,
//!   and falls back to an [`InProcess`] of its own if the daemon fails.
//! - [`Deferred`]: one of the others while it is still being set up on its own thread (the
//!   go command's handshake does not wait for the remote's TLS client or the daemon).
//! - [`Lazy`]: an [`InProcess`] that is created only when the run first needs the remote (a
//!   local miss or a put); a fully warm go command never creates it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sgcache_disk::DiskCache;
use sgcache_store::{DrainReport, ManifestName, Refused, RemoteCache, UploadJob, UploadQueue};
use sgcache_types::{ActionId, IndexEntry};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::fetch::{Fetcher, Hit};
use crate::lock;
use crate::session::Session;
use crate::used::UsedActions;

/// What to call with a lookup's result, from any thread.
pub type Done = Box<dyn FnOnce(Option<Hit>) + Send>;

/// A lookup's answer: now (and `done` is not called), or later through `done`.
#[derive(Debug)]
pub enum Answer {
    /// The result, now.
    Now(Option<Hit>),
    /// `done` will be called with it.
    Later,
}

/// Remote work for the serve loop.
pub trait RemoteWork: Send + Sync + std::fmt::Debug {
    /// Looks up `action` (a local miss) remotely. On a verified hit the entry is in the local
    /// tier when the result is delivered.
    fn lookup(&self, action: ActionId, done: Done) -> Answer;
    /// Records that this run used `entry` (a local hit or a put), for the manifest.
    fn note_used(&self, entry: &IndexEntry);
    /// Queues the upload of a fresh local entry whose output is at `path`.
    fn upload(&self, entry: IndexEntry, path: PathBuf);
    /// The end of the run: what must happen before the go command gets its `close` answer.
    fn finish(&self) -> DrainReport;
    /// How remote work is done, for the summary line (`local only`, `in-process`, …).
    fn describe(&self) -> String;
}

/// No remote.
#[derive(Debug, Default)]
pub struct LocalOnly;

impl RemoteWork for LocalOnly {
    fn lookup(&self, _action: ActionId, _done: Done) -> Answer {
        Answer::Now(None)
    }
    fn note_used(&self, _entry: &IndexEntry) {}
    fn upload(&self, _entry: IndexEntry, _path: PathBuf) {}
    fn finish(&self) -> DrainReport {
        DrainReport::default()
    }
    fn describe(&self) -> String {
        "local only".into()
    }
}

/// Remote work that is still being set up on a thread of its own, so the go command gets its
/// handshake without waiting for it.
///
/// Setting up a remote costs milliseconds before the first byte is sent (the TLS client loads
/// the system's root certificates; the daemon client connects), which a warm build that never
/// needs the remote would otherwise pay on every go command. Until the work is ready,
/// [`RemoteWork::note_used`] and [`RemoteWork::upload`] are kept, in order, and handed over
/// first; a lookup, `finish` and `describe` wait for it.
pub struct Deferred {
    state: Mutex<DeferredState>,
}

enum DeferredState {
    Pending {
        setup: std::thread::JoinHandle<Box<dyn RemoteWork>>,
        kept: Vec<Kept>,
    },
    Ready(Arc<dyn RemoteWork>),
    /// Taken while being resolved (never seen outside `ready`).
    Resolving,
}

enum Kept {
    Used(IndexEntry),
    Upload(IndexEntry, PathBuf),
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match &*lock(&self.state) {
            DeferredState::Pending { .. } => "Deferred(pending)",
            _ => "Deferred(ready)",
        })
    }
}

impl Deferred {
    /// Runs `setup` on a new thread. If the thread cannot start, runs it here.
    pub fn start(setup: impl FnOnce() -> Box<dyn RemoteWork> + Send + 'static) -> Deferred {
        let setup = std::sync::Arc::new(Mutex::new(Some(setup)));
        let s = setup.clone();
        let state = match std::thread::Builder::new()
            .name("sgcache-remote-setup".into())
            .spawn(move || (lock(&s).take().expect("set up once"))())
        {
            Ok(h) => DeferredState::Pending {
                setup: h,
                kept: Vec::new(),
            },
            Err(e) => {
                tracing::debug!("setting up the remote on this thread: {e}");
                let f = lock(&setup).take().expect("set up once");
                DeferredState::Ready(Arc::from(f()))
            }
        };
        Deferred {
            state: Mutex::new(state),
        }
    }

    /// The remote work, once set up (waits for it), with what was kept handed over first.
    fn ready(&self) -> Arc<dyn RemoteWork> {
        let mut g = lock(&self.state);
        if let DeferredState::Ready(w) = &*g {
            return w.clone();
        }
        let DeferredState::Pending { setup, kept } =
            std::mem::replace(&mut *g, DeferredState::Resolving)
        else {
            unreachable!("Resolving is only seen under the lock");
        };
        let work: Arc<dyn RemoteWork> = match setup.join() {
            Ok(w) => Arc::from(w),
            Err(_) => {
                tracing::warn!("remote disabled: setting it up panicked");
                Arc::new(LocalOnly)
            }
        };
        for k in kept {
            match k {
                Kept::Used(e) => work.note_used(&e),
                Kept::Upload(e, p) => work.upload(e, p),
            }
        }
        *g = DeferredState::Ready(work.clone());
        work
    }

    /// Keeps `k` while the setup runs; `Err(k)` once it has finished.
    fn keep(&self, k: Kept) -> Result<(), Kept> {
        let mut g = lock(&self.state);
        match &mut *g {
            DeferredState::Pending { setup, kept } if !setup.is_finished() => {
                kept.push(k);
                Ok(())
            }
            _ => Err(k),
        }
    }
}

impl RemoteWork for Deferred {
    fn lookup(&self, action: ActionId, done: Done) -> Answer {
        self.ready().lookup(action, done)
    }
    fn note_used(&self, entry: &IndexEntry) {
        if self.keep(Kept::Used(*entry)).is_err() {
            self.ready().note_used(entry);
        }
    }
    fn upload(&self, entry: IndexEntry, path: PathBuf) {
        if let Err(Kept::Upload(e, p)) = self.keep(Kept::Upload(entry, path)) {
            self.ready().upload(e, p);
        }
    }
    fn finish(&self) -> DrainReport {
        self.ready().finish()
    }
    fn describe(&self) -> String {
        self.ready().describe()
    }
}

/// Remote work created only when a run first needs it: a lookup (a local miss) or an upload
/// (a put).
///
/// A warm go command whose gets are all local hits and which puts nothing has no use for the
/// remote, yet creating an [`InProcess`] costs it a runtime with its threads, the TLS client
/// (root certificates) and the manifest load: measured as ~7 % of a warm `go build std` on
/// two cores against a local-only run. Until then, [`RemoteWork::note_used`] is kept (in
/// order) and handed over when the work is created, so the manifest of a run that does need
/// the remote still lists everything it used.
///
/// [`RemoteWork::finish`] of a run that never needed the remote asks `nothing_to_store` with
/// the entries it used (in-process: [`crate::nothing_to_store`], the conclusion
/// [`Session::store_run`] would reach, from this machine's recent manifest copy). Only if
/// there may be something to store — the copy is old or missing, or lacks an entry this run
/// used (hits from another build context, a store that failed) — is the work created then,
/// to load, merge and store the manifest exactly as an eager run would. A set-up that panics
/// leaves the run [`LocalOnly`].
pub struct Lazy {
    /// What [`RemoteWork::describe`] says while nothing was needed.
    label: String,
    nothing_to_store: Settled,
    state: Mutex<LazyState>,
}

type Setup = Box<dyn FnOnce() -> Box<dyn RemoteWork> + Send>;
/// Whether a run that used these entries, and never needed the remote, has nothing to store.
type Settled = Box<dyn Fn(&[IndexEntry]) -> bool + Send + Sync>;

enum LazyState {
    Idle {
        setup: Setup,
        used: Vec<IndexEntry>,
    },
    Ready(Arc<dyn RemoteWork>),
    /// Taken while being set up (never seen outside `needed`).
    Resolving,
}

impl std::fmt::Debug for Lazy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match &*lock(&self.state) {
            LazyState::Idle { .. } => "Lazy(not needed yet)",
            _ => "Lazy(created)",
        })
    }
}

impl Lazy {
    /// Work that `setup` creates on first need; `label` describes it until then;
    /// `nothing_to_store` tells a run that never needed it whether its `finish` may skip it.
    pub fn new(
        label: impl Into<String>,
        setup: impl FnOnce() -> Box<dyn RemoteWork> + Send + 'static,
        nothing_to_store: impl Fn(&[IndexEntry]) -> bool + Send + Sync + 'static,
    ) -> Lazy {
        Lazy {
            label: label.into(),
            nothing_to_store: Box::new(nothing_to_store),
            state: Mutex::new(LazyState::Idle {
                setup: Box::new(setup),
                used: Vec::new(),
            }),
        }
    }

    /// The work, created now if it was not (on the calling thread), with what was kept
    /// handed over first.
    fn needed(&self) -> Arc<dyn RemoteWork> {
        let mut g = lock(&self.state);
        if let LazyState::Ready(w) = &*g {
            return w.clone();
        }
        let LazyState::Idle { setup, used } = std::mem::replace(&mut *g, LazyState::Resolving)
        else {
            unreachable!("Resolving is only seen under the lock");
        };
        let work: Arc<dyn RemoteWork> =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(setup)) {
                Ok(w) => Arc::from(w),
                Err(_) => {
                    tracing::warn!("remote disabled: setting it up panicked");
                    Arc::new(LocalOnly)
                }
            };
        for e in &used {
            work.note_used(e);
        }
        *g = LazyState::Ready(work.clone());
        work
    }

    /// The work if it was created.
    fn created(&self) -> Option<Arc<dyn RemoteWork>> {
        match &*lock(&self.state) {
            LazyState::Ready(w) => Some(w.clone()),
            _ => None,
        }
    }
}

impl RemoteWork for Lazy {
    fn lookup(&self, action: ActionId, done: Done) -> Answer {
        self.needed().lookup(action, done)
    }
    fn note_used(&self, entry: &IndexEntry) {
        let work = {
            let mut g = lock(&self.state);
            match &mut *g {
                LazyState::Idle { used, .. } => {
                    used.push(*entry);
                    return;
                }
                LazyState::Ready(w) => w.clone(),
                LazyState::Resolving => unreachable!("Resolving is only seen under the lock"),
            }
        };
        work.note_used(entry);
    }
    fn upload(&self, entry: IndexEntry, path: PathBuf) {
        self.needed().upload(entry, path);
    }
    fn finish(&self) -> DrainReport {
        if let Some(w) = self.created() {
            return w.finish();
        }
        let settled = match &*lock(&self.state) {
            LazyState::Idle { used, .. } => (self.nothing_to_store)(used),
            _ => false,
        };
        if settled {
            DrainReport::default()
        } else {
            self.needed().finish()
        }
    }
    fn describe(&self) -> String {
        match self.created() {
            Some(w) => w.describe(),
            None => self.label.clone(),
        }
    }
}

/// What an in-process tier needs besides the remote and the local tier.
#[derive(Debug, Clone, Copy)]
pub struct TierConfig {
    /// The build context's manifest, when manifests are on.
    pub manifest: Option<ManifestName>,
    /// Prefetch from that manifest at start.
    pub prefetch: bool,
}

/// The runtime remote work runs on: two worker threads, because the work is I/O and the go
/// command needs the cores.
pub fn runtime(name: &str) -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
}

/// The remote work of one run, in this process.
#[derive(Debug)]
pub struct InProcess {
    rt: Runtime,
    fetcher: Fetcher,
    uploads: UploadQueue,
    session: Option<Arc<Session>>,
    used: Arc<Mutex<UsedActions>>,
    inflight: Mutex<Vec<JoinHandle<()>>>,
}

impl InProcess {
    /// Starts the runtime and, with a manifest and prefetch, the session's prefetch.
    pub fn start(
        remote: RemoteCache,
        disk: Arc<DiskCache>,
        cfg: TierConfig,
    ) -> std::io::Result<InProcess> {
        let rt = runtime("sgcache-remote")?;
        let fetcher = Fetcher::new(remote.clone(), disk);
        let uploads = UploadQueue::start(remote, rt.handle());
        fetcher.attach_uploads(&uploads);
        let session = cfg.manifest.map(|name| Session::new(fetcher.clone(), name));
        if cfg.prefetch
            && let Some(s) = &session
        {
            s.start_prefetch(rt.handle(), false);
        }
        Ok(InProcess {
            rt,
            fetcher,
            uploads,
            session,
            used: Arc::default(),
            inflight: Mutex::default(),
        })
    }

    /// The fetcher (for tests and the daemon client's fallback).
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }
}

impl RemoteWork for InProcess {
    fn lookup(&self, action: ActionId, done: Done) -> Answer {
        let fetcher = self.fetcher.clone();
        let used = self.session.is_some().then(|| self.used.clone());
        let task = self.rt.spawn(async move {
            let found = fetcher.lookup(action).await;
            if let Some(used) = &used {
                match &found {
                    Some((e, _)) => {
                        lock(used).note(*e);
                    }
                    None => lock(used).note_miss(action),
                }
            }
            done(found)
        });
        let mut v = lock(&self.inflight);
        if v.len() >= 64 {
            v.retain(|h| !h.is_finished());
        }
        v.push(task);
        Answer::Later
    }

    fn note_used(&self, entry: &IndexEntry) {
        if self.session.is_some() {
            lock(&self.used).note(*entry);
        }
    }

    fn upload(&self, entry: IndexEntry, path: PathBuf) {
        let heal = self.fetcher.on_put(&entry);
        if !heal && self.fetcher.recently_uploaded(&entry) {
            self.fetcher.remote().metrics().uploads_skipped_recent.inc();
            return;
        }
        match self.uploads.enqueue(UploadJob { entry, path, heal }) {
            Ok(()) | Err(Refused::ReadOnly) => {}
            Err(why) => tracing::debug!("upload of {} not queued: {why}", entry.action.short()),
        }
    }

    fn finish(&self) -> DrainReport {
        let deadline = self.uploads.cache().config().upload_deadline;
        if let Some(s) = &self.session {
            s.stop_prefetch();
        }
        let tasks = std::mem::take(&mut *lock(&self.inflight));
        let used = std::mem::take(&mut *lock(&self.used));
        self.rt.block_on(async {
            for t in tasks {
                let _ = t.await;
            }
            // One deadline for the manifest and the uploads together.
            let until = tokio::time::Instant::now() + deadline;
            if let Some(s) = &self.session {
                s.store_run(&used, deadline).await;
            }
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            self.uploads.drain(left.max(Duration::from_millis(1))).await
        })
    }

    fn describe(&self) -> String {
        match self.fetcher.outage_at_start() {
            Some(o) if o.active(std::time::SystemTime::now()) => {
                format!("in-process; remote down since {}, skipped", o.since())
            }
            _ => "in-process".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it is told, in order.
    #[derive(Debug, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl RemoteWork for Recorder {
        fn lookup(&self, action: ActionId, _done: Done) -> Answer {
            lock(&self.0).push(format!("lookup {}", action.short()));
            Answer::Now(None)
        }
        fn note_used(&self, e: &IndexEntry) {
            lock(&self.0).push(format!("used {}", e.action.short()));
        }
        fn upload(&self, e: IndexEntry, _path: PathBuf) {
            lock(&self.0).push(format!("upload {}", e.action.short()));
        }
        fn finish(&self) -> DrainReport {
            lock(&self.0).push("finish".into());
            DrainReport::default()
        }
        fn describe(&self) -> String {
            "recorder".into()
        }
    }

    fn entry(b: u8) -> IndexEntry {
        IndexEntry {
            action: ActionId::from([b; 32]),
            output: sgcache_types::OutputId::from([b; 32]),
            size: 1,
            time_nanos: 0,
        }
    }

    #[test]
    fn deferred_keeps_what_comes_before_the_setup_and_hands_it_over_in_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let l = log.clone();
        let d = Deferred::start(move || {
            // The setup is slow: it finishes only when the test says so.
            wait.recv().unwrap();
            Box::new(Recorder(l)) as Box<dyn RemoteWork>
        });
        d.note_used(&entry(1));
        d.upload(entry(2), PathBuf::from("/x"));
        assert!(
            lock(&log).is_empty(),
            "nothing reaches the work before it is set up"
        );
        assert_eq!(format!("{d:?}"), "Deferred(pending)");
        go.send(()).unwrap();
        assert!(matches!(
            d.lookup(ActionId::from([3; 32]), Box::new(|_| {})),
            Answer::Now(None)
        ));
        d.note_used(&entry(4));
        assert_eq!(d.describe(), "recorder");
        d.finish();
        let short = |b: u8| ActionId::from([b; 32]).short();
        assert_eq!(
            *lock(&log),
            vec![
                format!("used {}", short(1)),
                format!("upload {}", short(2)),
                format!("lookup {}", short(3)),
                format!("used {}", short(4)),
                "finish".to_string(),
            ]
        );
    }

    #[test]
    fn lazy_work_is_created_only_when_needed_and_gets_what_was_used_before() {
        // Never needed: never created, finish is free, describe says the label.
        let created = Arc::new(Mutex::new(0));
        let c = created.clone();
        let idle = Lazy::new(
            "in-process",
            move || {
                *lock(&c) += 1;
                Box::new(LocalOnly) as Box<dyn RemoteWork>
            },
            |used| used.len() == 2,
        );
        idle.note_used(&entry(1));
        idle.note_used(&entry(2));
        assert_eq!(idle.describe(), "in-process");
        idle.finish();
        assert_eq!(
            *lock(&created),
            0,
            "a run that only hit locally created the remote"
        );
        assert_eq!(format!("{idle:?}"), "Lazy(not needed yet)");

        // A miss creates it once; the entries used before reach it first, in order.
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let c = created.clone();
        let lazy = Lazy::new(
            "in-process",
            move || {
                *lock(&c) += 1;
                Box::new(Recorder(l)) as Box<dyn RemoteWork>
            },
            |_| true,
        );
        lazy.note_used(&entry(1));
        lazy.note_used(&entry(2));
        assert!(lock(&log).is_empty());
        lazy.lookup(ActionId::from([3; 32]), Box::new(|_| {}));
        lazy.note_used(&entry(4));
        lazy.upload(entry(5), PathBuf::from("/x"));
        assert_eq!(lazy.describe(), "recorder");
        lazy.finish();
        assert_eq!(*lock(&created), 1);
        let short = |b: u8| ActionId::from([b; 32]).short();
        assert_eq!(
            *lock(&log),
            vec![
                format!("used {}", short(1)),
                format!("used {}", short(2)),
                format!("lookup {}", short(3)),
                format!("used {}", short(4)),
                format!("upload {}", short(5)),
                "finish".to_string(),
            ]
        );

        // Never needed, but the run used something the manifest may lack: finish creates it
        // (to store the manifest), with the entries handed over first.
        let log2 = Arc::new(Mutex::new(Vec::new()));
        let l2 = log2.clone();
        let unsettled = Lazy::new(
            "in-process",
            move || Box::new(Recorder(l2)) as Box<dyn RemoteWork>,
            |_| false,
        );
        unsettled.note_used(&entry(7));
        unsettled.finish();
        assert_eq!(
            *lock(&log2),
            vec![format!("used {}", short(7)), "finish".to_string()]
        );

        // A put alone also needs it; a set-up that panics leaves the run local only.
        let p = Lazy::new("in-process", || panic!("setting up failed"), |_| true);
        p.upload(entry(6), PathBuf::from("/y"));
        assert_eq!(p.describe(), "local only");
    }

    #[test]
    fn a_setup_that_panics_leaves_a_local_only_run() {
        let d = Deferred::start(|| panic!("setting up failed"));
        d.note_used(&entry(1));
        assert!(matches!(
            d.lookup(ActionId::from([1; 32]), Box::new(|_| {})),
            Answer::Now(None)
        ));
        assert_eq!(d.describe(), "local only");
    }
}
