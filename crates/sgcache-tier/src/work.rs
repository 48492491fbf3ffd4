//! [`RemoteWork`]: the one seam between the serve loop and the remote.
//!
//! The serve loop does every local get and put itself; only what involves the remote goes
//! through this trait: a lookup for a local miss, an upload after a put, the record of the
//! actions a run used (for the manifest), and the end of the run. Three implementations:
//!
//! - [`LocalOnly`]: no remote; every lookup is a miss, answered at once.
//! - [`InProcess`]: the remote work of one run, on a small runtime of its own.
//! - the daemon client (in the binary): hands the work to the shared daemon over a socket,
//!   and falls back to an [`InProcess`] of its own if the daemon fails.

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
