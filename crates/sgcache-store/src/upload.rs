//! [`UploadQueue`]: background uploads of fresh local entries, bounded in length, in
//! concurrency and (when drained) in time.
//!
//! The queue runs on the runtime it is given at [`UploadQueue::start`]; nothing is ever
//! dropped without being counted, and every refusal says why ([`Refused`]). An upload writes
//! the object first (unless the remote has it, or the job heals a corrupt one), then the
//! action entry, so an entry never names a missing object.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sgcache_types::IndexEntry;
use tokio::runtime::Handle;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::cache::RemoteCache;
use crate::error::ErrorKind;

/// One upload: the entry, and the local file holding its output (already verified
/// against the output id by the local tier).
#[derive(Debug, Clone)]
pub struct UploadJob {
    /// The entry to publish.
    pub entry: IndexEntry,
    /// The output's local file.
    pub path: PathBuf,
    /// Overwrite the remote object even if it exists: this machine found the remote's copy
    /// corrupt and now holds verified bytes (healing).
    pub heal: bool,
}

/// Why an upload was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This job does not write the remote.
    ReadOnly,
    /// The remote is known to be down (breaker open); counted in `upload_skipped_down`.
    RemoteDown,
    /// The queue is full; counted in `upload_dropped`.
    QueueFull,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::ReadOnly => "read-only",
            Refused::RemoteDown => "the remote is down",
            Refused::QueueFull => "the upload queue is full",
        })
    }
}

/// What happened to this queue's uploads, counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Uploads delivered.
    pub completed: u64,
    /// Uploads that failed.
    pub failed: u64,
    /// Uploads refused: queue full.
    pub dropped: u64,
    /// Uploads not attempted: the remote was down.
    pub skipped_down: u64,
    /// Uploads still queued or running when the last drain's deadline passed.
    pub abandoned: u64,
}

impl DrainReport {
    /// Whether every upload asked for made it.
    pub fn is_clean(&self) -> bool {
        self.failed == 0 && self.dropped == 0 && self.abandoned == 0 && self.skipped_down == 0
    }

    /// Adds `other` (e.g. a fallback's report).
    pub fn merge(&mut self, other: &DrainReport) {
        self.completed += other.completed;
        self.failed += other.failed;
        self.dropped += other.dropped;
        self.skipped_down += other.skipped_down;
        self.abandoned += other.abandoned;
    }
}

type Uploaded = Box<dyn Fn(&IndexEntry) + Send + Sync>;

#[derive(Default)]
struct Counts {
    pending: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    skipped_down: AtomicU64,
    idle: Notify,
    on_uploaded: Mutex<Option<Uploaded>>,
}

impl std::fmt::Debug for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counts")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

/// The upload queue of one remote. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UploadQueue {
    cache: RemoteCache,
    tx: mpsc::Sender<UploadJob>,
    counts: Arc<Counts>,
}

impl UploadQueue {
    /// Starts the queue's dispatcher on `rt`. It ends when the last clone of the queue is
    /// dropped.
    pub fn start(cache: RemoteCache, rt: &Handle) -> UploadQueue {
        let cfg = cache.config();
        let (tx, mut rx) = mpsc::channel::<UploadJob>(cfg.upload_queue.max(1));
        let counts = Arc::new(Counts::default());
        let sem = Arc::new(Semaphore::new(cfg.upload_concurrency.max(1)));
        let (c, q) = (cache.clone(), counts.clone());
        rt.spawn(async move {
            while let Some(job) = rx.recv().await {
                let permit = sem
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let (c, q) = (c.clone(), q.clone());
                tokio::spawn(async move {
                    upload(&c, &q, &job).await;
                    drop(permit);
                    q.pending.fetch_sub(1, Ordering::SeqCst);
                    q.idle.notify_waiters();
                });
            }
        });
        UploadQueue { cache, tx, counts }
    }

    /// Calls `f` with each entry once its upload has completed.
    pub fn on_uploaded(&self, f: impl Fn(&IndexEntry) + Send + Sync + 'static) {
        *self
            .counts
            .on_uploaded
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
    }

    /// Queues `job`. Never blocks.
    pub fn enqueue(&self, job: UploadJob) -> Result<(), Refused> {
        let m = self.cache.metrics();
        if !self.cache.writes() {
            return Err(Refused::ReadOnly);
        }
        if self.cache.breaker().is_open() {
            m.upload_skipped_down.inc();
            self.counts.skipped_down.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::RemoteDown);
        }
        self.counts.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.try_send(job).is_err() {
            self.counts.pending.fetch_sub(1, Ordering::SeqCst);
            m.upload_dropped.inc();
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::QueueFull);
        }
        Ok(())
    }

    /// Waits for queued uploads, up to `deadline`; what is left is reported abandoned (it
    /// keeps running in the background while the runtime lives).
    pub async fn drain(&self, deadline: Duration) -> DrainReport {
        let q = &self.counts;
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let notified = q.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if q.pending.load(Ordering::SeqCst) == 0 {
                break;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                break;
            }
        }
        let abandoned = q.pending.load(Ordering::SeqCst);
        if abandoned > 0 {
            self.cache.metrics().upload_abandoned.add(abandoned);
            tracing::debug!(abandoned, "remote: upload deadline passed");
        }
        self.report(abandoned)
    }

    fn report(&self, abandoned: u64) -> DrainReport {
        let q = &self.counts;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DrainReport {
            completed: l(&q.completed),
            failed: l(&q.failed),
            dropped: l(&q.dropped),
            skipped_down: l(&q.skipped_down),
            abandoned,
        }
    }

    /// Uploads queued or running right now.
    pub fn pending(&self) -> u64 {
        self.counts.pending.load(Ordering::SeqCst)
    }

    /// The remote this queue writes.
    pub fn cache(&self) -> &RemoteCache {
        &self.cache
    }
}

async fn upload(c: &RemoteCache, q: &Counts, job: &UploadJob) {
    let m = c.metrics();
    let e = &job.entry;
    let r = async {
        if job.heal {
            c.put_object(&e.output, e.size, job.path.clone()).await?;
            m.uploads_healed.inc();
        } else if c.has_object(&e.output).await? {
            m.uploads_skipped_existing.inc();
        } else {
            c.put_object(&e.output, e.size, job.path.clone()).await?;
        }
        c.put_entry(e).await
    }
    .await;
    match r {
        Ok(()) => {
            m.uploads.inc();
            q.completed.fetch_add(1, Ordering::Relaxed);
            if let Some(f) = q
                .on_uploaded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            {
                f(e);
            }
        }
        Err(err) if err.kind() == ErrorKind::BreakerOpen => {
            m.upload_skipped_down.inc();
            q.skipped_down.fetch_add(1, Ordering::Relaxed);
        }
        Err(err) => {
            m.upload_failed.inc();
            q.failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %err, "remote: upload failed");
        }
    }
}
