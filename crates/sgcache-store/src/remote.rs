//! The remote tier as the serve loop sees it: [`Remote`], built from a [`RemoteConfig`].
//!
//! Key layout (relative to the URL's prefix, see `docs/remote.md`):
//!
//! ```text
//! framed (s3, gs, azblob, redis, gha, file):
//!   <namespace>/ac/<action hex>   action entry (format::encode_entry), per trust scope
//!   cas/<output hex>              object: "SGC" + codec byte + body, shared by all scopes
//! plain (http, https):
//!   ac/<hex>                      action entry; <hex> is the action id in namespace
//!                                 `default`, a namespace-derived hash otherwise
//!   cas/<output hex>              the raw object bytes
//! ```
//!
//! Objects are shared across namespaces because they are verified by SHA-256 before
//! anything is written locally; the ActionID → OutputID mapping cannot be verified, so only
//! action entries are scoped (and optionally signed).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::backend::{Layout, OpendalStore, parse_url};
use crate::error::{ErrorKind, StoreError};
use crate::format::{
    self, Manifest, ManifestRecord, ObjectDecoder, PackRef, RemoteEntry, Verifier,
};
use crate::layers::{Breaker, BreakerState, Meter, Metered, Retry, RetryPolicy, Timeout};
use crate::store::{Body, ByteStream, Capabilities, Store, read_all};

/// Which directions of the remote are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Read and write (the default).
    #[default]
    ReadWrite,
    /// Never write the remote: for untrusted jobs such as pull requests from forks.
    ReadOnly,
    /// Never read the remote: for seeding jobs.
    WriteOnly,
}

/// Everything the remote tier needs; resolved by the binary's configuration layer.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The remote URL (see `docs/remote.md` for the forms).
    pub url: String,
    /// Namespace (trust scope) written to and read first. Default `default`.
    pub namespace: String,
    /// Further namespaces read, in order, after `namespace` (e.g. `main`).
    pub read_namespaces: Vec<String>,
    /// HMAC key: sign written entries, ignore unsigned or foreign-signed entries on read.
    pub signing_key: Option<Vec<u8>>,
    /// zstd level for uploaded objects; `None` = store raw. Ignored (always raw) for
    /// http(s):// remotes.
    pub compression_level: Option<i32>,
    /// Read/write directions.
    pub mode: Mode,
    /// Time limit of one operation (all its retries), and the longest gap between two
    /// chunks of a download. Uploads get one extra second per MiB.
    pub op_timeout: Duration,
    /// How long `drain` waits for queued uploads.
    pub upload_deadline: Duration,
    /// Uploads in flight at once.
    pub upload_concurrency: usize,
    /// Uploads waiting; beyond this, new ones are dropped (and counted).
    pub upload_queue: usize,
    /// Consecutive failures after which the remote is switched off (0 = never).
    /// Credential errors switch it off at once.
    pub breaker_threshold: u32,
    /// With each stored manifest, also store its outputs in packs (a few MiB each), so
    /// prefetch fetches them with a few requests instead of one per output.
    pub packs: bool,
    /// OpenDAL configuration keys for the service, overriding the URL's query parameters
    /// (e.g. `access_key_id`, `account_key`, `credential_path`).
    pub extra: BTreeMap<String, String>,
}

impl RemoteConfig {
    /// The defaults documented in `docs/remote.md`, for `url`.
    pub fn new(url: impl Into<String>) -> RemoteConfig {
        RemoteConfig {
            url: url.into(),
            namespace: "default".to_string(),
            read_namespaces: Vec::new(),
            signing_key: None,
            compression_level: Some(3),
            mode: Mode::ReadWrite,
            op_timeout: Duration::from_secs(10),
            upload_deadline: Duration::from_secs(10),
            upload_concurrency: 8,
            upload_queue: 1024,
            breaker_threshold: 5,
            packs: true,
            extra: BTreeMap::new(),
        }
    }
}

/// What `drain` saw, counted since the remote was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Uploads finished (including those whose object was already there).
    pub completed: u64,
    /// Uploads that failed (errors, breaker open).
    pub failed: u64,
    /// Uploads dropped because the queue was full (or no runtime was running).
    pub dropped: u64,
    /// Uploads still queued or running when the deadline passed.
    pub abandoned: u64,
}

impl DrainReport {
    /// Whether every enqueued upload made it.
    pub fn is_clean(&self) -> bool {
        self.failed == 0 && self.dropped == 0 && self.abandoned == 0
    }
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
    corrupt: AtomicU64,
    uploads: AtomicU64,
    uploads_skipped: AtomicU64,
    upload_failed: AtomicU64,
    upload_dropped: AtomicU64,
    packs_stored: AtomicU64,
    /// Bytes of the packs stored (as stored, i.e. compressed), also in `bytes_up`.
    pack_bytes_up: AtomicU64,
    packs_skipped: AtomicU64,
    packs_fetched: AtomicU64,
}

#[derive(Debug)]
struct UploadJob {
    action: [u8; 32],
    output_id: [u8; 32],
    size: u64,
    time_nanos: i64,
    path: PathBuf,
}

/// State the upload workers share (it does not hold the queue's sender, so dropping the
/// last [`Remote`] ends the dispatcher).
#[derive(Debug)]
struct Shared {
    cfg: RemoteConfig,
    store: Arc<dyn Store>,
    layout: Layout,
    caps: Capabilities,
    breaker: Arc<BreakerState>,
    meter: Arc<Meter>,
    c: Counters,
    pending: AtomicU64,
    idle: Notify,
    masked: String,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    tx: mpsc::Sender<UploadJob>,
    rx: Mutex<Option<mpsc::Receiver<UploadJob>>>,
}

/// The remote tier. Cheap to clone; construction does no network I/O.
#[derive(Debug, Clone)]
pub struct Remote {
    inner: Arc<Inner>,
}

fn validate_namespace(url: &str, ns: &str) -> Result<(), StoreError> {
    if ns.is_empty() || ns.len() > 200 {
        return Err(StoreError::Config {
            url: crate::backend::mask_url(url),
            reason: format!("namespace `{ns}` must be 1 to 200 bytes"),
        });
    }
    Ok(())
}

impl Remote {
    /// Build the remote from its configuration. Fails only on configuration problems (bad
    /// URL, unknown scheme, a backend not compiled in); never touches the network.
    pub fn new(cfg: RemoteConfig) -> Result<Remote, StoreError> {
        let parsed = parse_url(&cfg.url, &cfg.extra)?;
        let store = OpendalStore::from_parsed(&cfg.url, &parsed)?;
        let masked = parsed.masked.clone();
        Remote::with_store(cfg, Arc::new(store), parsed.layout, masked)
    }

    /// Build the remote over any [`Store`] (tests, custom backends). The timeout, retry,
    /// metering and breaker layers are added here.
    pub fn with_store(
        cfg: RemoteConfig,
        backend: Arc<dyn Store>,
        layout: Layout,
        label: String,
    ) -> Result<Remote, StoreError> {
        validate_namespace(&cfg.url, &cfg.namespace)?;
        for ns in &cfg.read_namespaces {
            validate_namespace(&cfg.url, ns)?;
        }
        let caps = backend.capabilities();
        let breaker = Arc::new(BreakerState::new(cfg.breaker_threshold, label.clone()));
        let meter = Arc::new(Meter::default());
        let stack = Breaker::new(
            Metered::new(
                Timeout::new(Retry::new(backend, RetryPolicy::default()), cfg.op_timeout),
                meter.clone(),
            ),
            breaker.clone(),
        );
        let (tx, rx) = mpsc::channel(cfg.upload_queue.max(1));
        let shared = Arc::new(Shared {
            cfg,
            store: Arc::new(stack),
            layout,
            caps,
            breaker,
            meter,
            c: Counters::default(),
            pending: AtomicU64::new(0),
            idle: Notify::new(),
            masked: label,
        });
        Ok(Remote {
            inner: Arc::new(Inner {
                shared,
                tx,
                rx: Mutex::new(Some(rx)),
            }),
        })
    }

    fn s(&self) -> &Shared {
        &self.inner.shared
    }

    /// The URL with secrets masked, and the mode.
    pub fn describe(&self) -> String {
        let s = self.s();
        let mode = match s.cfg.mode {
            Mode::ReadWrite => "read-write",
            Mode::ReadOnly => "read-only",
            Mode::WriteOnly => "write-only",
        };
        format!("{} ({mode}, namespace {})", s.masked, s.cfg.namespace)
    }

    /// The configuration this remote was built from.
    pub fn config(&self) -> &RemoteConfig {
        &self.s().cfg
    }

    /// Whether the breaker has switched the remote off.
    pub fn is_disabled(&self) -> bool {
        self.s().breaker.is_open()
    }

    /// Loads the build manifest `name` (a build-context hash): what a previous run in that
    /// context used, most recent first. Our namespace first, then the read namespaces; the
    /// first one found wins. A manifest is verified exactly like an action entry (it is a list
    /// of them): read from a namespace we trust, and with a signing key only under a valid
    /// tag, so a forged or foreign-signed manifest is ignored whole. Any error is an empty
    /// manifest.
    pub async fn get_manifest(&self, name: &[u8; 32]) -> Manifest {
        let s = self.s();
        if s.cfg.mode == Mode::WriteOnly {
            return Manifest::default();
        }
        let id = manifest_id(name);
        let key = s.cfg.signing_key.as_deref();
        let limit = format::MANIFEST_MAX_BYTES;
        for ns in s.read_order() {
            let k = s.ac_key(ns, &id);
            let bytes = match s.store.get(&k).await {
                Ok(None) => continue,
                Ok(Some(stream)) => match read_all(stream, &k, limit).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::debug!(error = %e, "remote: manifest unreadable");
                        return Manifest::default();
                    }
                },
                Err(e) => {
                    tracing::debug!(error = %e, "remote: manifest lookup failed");
                    return Manifest::default();
                }
            };
            match format::decode_manifest(&bytes, ns, name, key) {
                Ok(m) => return m,
                Err(why) => {
                    s.c.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(key = %k, ?why, "remote: manifest ignored");
                }
            }
        }
        Manifest::default()
    }

    /// Stores the build manifest `name` in our namespace (at most [`format::MANIFEST_MAX`] records,
    /// most recent first, and the packs of their outputs; signed with the signing key if
    /// there is one). No-op in read-only mode or once the breaker is open.
    pub async fn put_manifest(
        &self,
        name: &[u8; 32],
        records: &[ManifestRecord],
        packs: &[PackRef],
    ) -> Result<(), StoreError> {
        let s = self.s();
        if s.cfg.mode == Mode::ReadOnly || s.breaker.is_open() {
            return Ok(());
        }
        let ns = &s.cfg.namespace;
        let body = format::encode_manifest(records, packs, ns, name, s.cfg.signing_key.as_deref());
        let k = s.ac_key(ns, &manifest_id(name));
        s.store.put(&k, Body::from_bytes(Bytes::from(body))).await
    }

    /// Look up an action entry: our namespace first, then `read_namespaces` in order. With a
    /// signing key, unsigned or foreign-signed entries are ignored. Errors become `None`.
    pub async fn get_action(&self, action: &[u8; 32]) -> Option<RemoteEntry> {
        let s = self.s();
        if s.cfg.mode == Mode::WriteOnly {
            return None;
        }
        let key = s.cfg.signing_key.as_deref();
        for ns in s.read_order() {
            let k = s.ac_key(ns, action);
            let bytes = match s.store.get(&k).await {
                Ok(None) => continue,
                Ok(Some(stream)) => match read_all(stream, &k, format::MAX_ENTRY).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::debug!(error = %e, "remote: action entry unreadable");
                        return None;
                    }
                },
                Err(e) => {
                    tracing::debug!(error = %e, "remote: action lookup failed");
                    return None;
                }
            };
            match format::decode_entry(&bytes, ns, action, key) {
                Ok(e) => return Some(e),
                Err(why) => {
                    s.c.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(key = %k, ?why, "remote: action entry ignored");
                }
            }
        }
        s.c.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Stream the object `output_id` into `sink`, decompressing and verifying it (never more
    /// than `size` bytes; at the end, length and SHA-256 must match or an error says so and
    /// the caller must discard what it received). `Ok(false)` on a miss.
    pub async fn fetch_object(
        &self,
        output_id: &[u8; 32],
        size: u64,
        sink: &mut (dyn Write + Send),
    ) -> Result<bool, StoreError> {
        self.fetch_object_with(output_id, size, sink, true).await
    }

    /// [`Remote::fetch_object`] into a sink that hashes what it is given and checks it
    /// against `output_id` itself before anything becomes visible (the local tier's
    /// `PendingPut` does): the length is still enforced here, but the bytes are not hashed a
    /// second time (SHA-256 is the largest CPU cost of a download). The caller reports a
    /// mismatch its sink finds with [`Remote::count_corrupt`].
    pub async fn fetch_object_into_checking_sink(
        &self,
        output_id: &[u8; 32],
        size: u64,
        sink: &mut (dyn Write + Send),
    ) -> Result<bool, StoreError> {
        self.fetch_object_with(output_id, size, sink, false).await
    }

    /// Counts an object found corrupt after [`Remote::fetch_object_into_checking_sink`].
    pub fn count_corrupt(&self) {
        self.s().c.corrupt.fetch_add(1, Ordering::Relaxed);
    }

    /// Stores `pack` (a whole pack: header and objects) under `cas/<its SHA-256>`, framed and
    /// compressed like any object, unless the remote has it already. Returns its reference.
    pub async fn put_pack(&self, pack: Vec<u8>) -> Result<PackRef, StoreError> {
        let s = self.inner.shared.clone();
        let (id, body) = tokio::task::spawn_blocking(move || {
            let id: [u8; 32] = Sha256::digest(&pack).into();
            let len = pack.len() as u64;
            let body = match (s.layout, s.cfg.compression_level) {
                (Layout::Plain, _) => pack,
                (Layout::Framed, level) => {
                    let mut b = format::OBJECT_MAGIC.to_vec();
                    match level {
                        Some(l) => {
                            b.push(format::CODEC_ZSTD);
                            zstd::stream::copy_encode(&pack[..], &mut b, l)?;
                        }
                        None => {
                            b.push(format::CODEC_RAW);
                            b.extend_from_slice(&pack);
                        }
                    }
                    b
                }
            };
            Ok::<_, std::io::Error>((PackRef { id, len }, body))
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|e| StoreError::backend("put", "pack", ErrorKind::Permanent, e.to_string()))?;
        let s = self.s();
        let key = s.cas_key(&id.id);
        if s.caps.exists && s.store.exists(&key).await? {
            s.c.packs_skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(id);
        }
        let stored = body.len() as u64;
        s.store
            .put(&key, Body::from_bytes(Bytes::from(body)))
            .await?;
        s.c.packs_stored.fetch_add(1, Ordering::Relaxed);
        s.c.pack_bytes_up.fetch_add(stored, Ordering::Relaxed);
        Ok(id)
    }

    /// Streams the pack `pack` into `sink` (decompressed; never more than its length). Its
    /// bytes are not hashed as a whole: the sink must verify every object it keeps (a
    /// [`format::PackSplitter`] feeding the local tier's `PendingPut`s does).
    pub async fn fetch_pack(
        &self,
        pack: &PackRef,
        sink: &mut (dyn Write + Send),
    ) -> Result<bool, StoreError> {
        let found = self
            .fetch_object_with(&pack.id, pack.len, sink, false)
            .await;
        if matches!(found, Ok(true)) {
            self.s().c.packs_fetched.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    async fn fetch_object_with(
        &self,
        output_id: &[u8; 32],
        size: u64,
        sink: &mut (dyn Write + Send),
        hash: bool,
    ) -> Result<bool, StoreError> {
        let s = self.s();
        if s.cfg.mode == Mode::WriteOnly {
            return Ok(false);
        }
        let key = s.cas_key(output_id);
        let mut stream = match s.store.get(&key).await? {
            None => {
                s.c.misses.fetch_add(1, Ordering::Relaxed);
                return Ok(false);
            }
            Some(st) => st,
        };
        let r = async {
            let mut dec = ObjectDecoder::new(
                s.layout == Layout::Framed,
                Verifier::new(sink, size, hash),
                &key,
            );
            while let Some(chunk) = stream.next().await {
                dec.push(&chunk?)?;
            }
            dec.finish(output_id)
        }
        .await;
        match r {
            Ok(_) => {
                s.c.hits.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Err(e) => {
                if e.kind() == ErrorKind::Corrupt {
                    s.c.corrupt.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "remote: object rejected");
                }
                Err(e)
            }
        }
    }

    /// Queue a background upload of `action → output` whose bytes are in `path`. Never
    /// blocks; a full queue drops the upload (counted). No-op in read-only mode or once the
    /// breaker is open.
    pub fn enqueue_upload(
        &self,
        action: [u8; 32],
        output_id: [u8; 32],
        size: u64,
        time_nanos: i64,
        path: PathBuf,
    ) {
        let s = self.s();
        if s.cfg.mode == Mode::ReadOnly || s.breaker.is_open() {
            return;
        }
        if !self.ensure_dispatcher() {
            s.c.upload_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let job = UploadJob {
            action,
            output_id,
            size,
            time_nanos,
            path,
        };
        s.pending.fetch_add(1, Ordering::SeqCst);
        if self.inner.tx.try_send(job).is_err() {
            s.pending.fetch_sub(1, Ordering::SeqCst);
            s.c.upload_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn ensure_dispatcher(&self) -> bool {
        let mut guard = self.inner.rx.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            return true;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let mut rx = guard.take().expect("checked above");
        let shared = self.inner.shared.clone();
        handle.spawn(async move {
            let sem = Arc::new(Semaphore::new(shared.cfg.upload_concurrency.max(1)));
            while let Some(job) = rx.recv().await {
                let permit = sem
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore never closed");
                let sh = shared.clone();
                tokio::spawn(async move {
                    match sh.upload(&job).await {
                        Ok(()) => {
                            sh.c.uploads.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            sh.c.upload_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(error = %e, "remote: upload failed");
                        }
                    }
                    drop(permit);
                    sh.pending.fetch_sub(1, Ordering::SeqCst);
                    sh.idle.notify_waiters();
                });
            }
        });
        true
    }

    /// Wait for queued uploads, up to `upload_deadline`.
    pub async fn drain(&self) -> DrainReport {
        let s = self.s();
        let deadline = tokio::time::Instant::now() + s.cfg.upload_deadline;
        loop {
            let notified = s.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if s.pending.load(Ordering::SeqCst) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        let abandoned = s.pending.load(Ordering::SeqCst);
        if abandoned > 0 {
            tracing::debug!(abandoned, "remote: upload deadline passed");
        }
        DrainReport {
            completed: s.c.uploads.load(Ordering::Relaxed),
            failed: s.c.upload_failed.load(Ordering::Relaxed),
            dropped: s.c.upload_dropped.load(Ordering::Relaxed),
            abandoned,
        }
    }

    /// Uploads queued or running right now.
    pub fn pending_uploads(&self) -> u64 {
        self.s().pending.load(Ordering::SeqCst)
    }

    /// Counters for stats and the summary line.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.s();
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("remote_hits", l(&s.c.hits)),
            ("remote_misses", l(&s.c.misses)),
            ("remote_errors", l(&s.meter.errors)),
            ("remote_rejected_entries", l(&s.c.rejected)),
            ("remote_corrupt_objects", l(&s.c.corrupt)),
            ("remote_bytes_down", l(&s.meter.bytes_down)),
            ("remote_bytes_up", l(&s.meter.bytes_up)),
            ("uploads", l(&s.c.uploads)),
            ("uploads_skipped_existing", l(&s.c.uploads_skipped)),
            ("upload_failed", l(&s.c.upload_failed)),
            ("upload_dropped", l(&s.c.upload_dropped)),
            ("packs_stored", l(&s.c.packs_stored)),
            ("pack_bytes_up", l(&s.c.pack_bytes_up)),
            ("packs_skipped_existing", l(&s.c.packs_skipped)),
            ("packs_fetched", l(&s.c.packs_fetched)),
            ("remote_disabled", u64::from(s.breaker.is_open())),
        ]
    }

    /// Check reachability and credentials with a put, get and delete of a probe object
    /// (only a get of a missing key in read-only mode). For `sgcache doctor`.
    pub async fn probe(&self) -> Result<String, StoreError> {
        let s = self.s();
        let t0 = Instant::now();
        let nonce = format!(
            "sgcache probe {} {}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let id: [u8; 32] = Sha256::digest(nonce.as_bytes()).into();
        let key = s.cas_key(&id);
        if s.cfg.mode == Mode::ReadOnly {
            if s.store.get(&key).await?.is_some() {
                return Err(StoreError::corrupt(
                    "object",
                    &key,
                    "a fresh random key exists",
                ));
            }
            return Ok(format!(
                "{}: reachable, read works ({} ms); writes not tested in read-only mode",
                self.describe(),
                t0.elapsed().as_millis()
            ));
        }
        let mut stored = Vec::new();
        if s.layout == Layout::Framed {
            stored.extend_from_slice(&format::OBJECT_MAGIC);
            stored.push(format::CODEC_RAW);
        }
        stored.extend_from_slice(nonce.as_bytes());
        s.store
            .put(&key, Body::from_bytes(Bytes::from(stored)))
            .await?;
        let mut back = Vec::new();
        if !self
            .fetch_object(&id, nonce.len() as u64, &mut back)
            .await?
        {
            return Err(StoreError::backend(
                "get",
                key,
                ErrorKind::Permanent,
                "probe object not found after put",
            ));
        }
        let deleted = if s.caps.delete {
            match s.store.delete(&key).await {
                Ok(()) => ", delete",
                Err(e) if e.kind() == ErrorKind::Permanent => ", delete unsupported",
                Err(e) => return Err(e),
            }
        } else {
            ""
        };
        Ok(format!(
            "{}: put, get{deleted} ok in {} ms",
            self.describe(),
            t0.elapsed().as_millis()
        ))
    }
}

impl Shared {
    fn read_order(&self) -> Vec<&str> {
        let mut v: Vec<&str> = vec![&self.cfg.namespace];
        for ns in &self.cfg.read_namespaces {
            if !v.contains(&ns.as_str()) {
                v.push(ns);
            }
        }
        v
    }

    fn ac_key(&self, ns: &str, action: &[u8; 32]) -> String {
        match self.layout {
            Layout::Framed => format!(
                "{}/ac/{}",
                format::encode_namespace(ns),
                hex::encode(action)
            ),
            Layout::Plain => format!("ac/{}", hex::encode(format::plain_action_key(ns, action))),
        }
    }

    fn cas_key(&self, output: &[u8; 32]) -> String {
        format!("cas/{}", hex::encode(output))
    }

    async fn upload(&self, job: &UploadJob) -> Result<(), StoreError> {
        let cas = self.cas_key(&job.output_id);
        let exists = if self.caps.exists {
            self.store.exists(&cas).await?
        } else {
            false
        };
        if exists {
            self.c.uploads_skipped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.store.put(&cas, self.object_body(job)).await?;
        }
        let e = RemoteEntry {
            output_id: job.output_id,
            size: job.size,
            time_nanos: job.time_nanos,
        };
        let ns = &self.cfg.namespace;
        let entry = format::encode_entry(&e, ns, &job.action, self.cfg.signing_key.as_deref());
        self.store
            .put(
                &self.ac_key(ns, &job.action),
                Body::from_bytes(Bytes::from(entry)),
            )
            .await
    }

    fn object_body(&self, job: &UploadJob) -> Body {
        let framed = self.layout == Layout::Framed;
        let level = if framed {
            self.cfg.compression_level
        } else {
            None
        };
        let len = match (framed, level) {
            (_, Some(_)) => None,
            (true, None) => Some(job.size + 4),
            (false, None) => Some(job.size),
        };
        let (path, size, key) = (job.path.clone(), job.size, self.cas_key(&job.output_id));
        Body::from_fn(len, move || {
            file_stream(path.clone(), size, framed, level, key.clone())
        })
    }
}

/// Read `path` on a blocking thread, add the header and compress as asked, and stream the
/// result in ~1 MiB chunks with little buffering.
fn file_stream(
    path: PathBuf,
    size: u64,
    framed: bool,
    level: Option<i32>,
    key: String,
) -> ByteStream {
    let (tx, rx) = mpsc::channel::<Result<Bytes, StoreError>>(2);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = produce(&path, size, framed, level, &tx) {
            let err = StoreError::backend(
                "put",
                key,
                ErrorKind::Permanent,
                format!("reading local `{}`: {e}", path.display()),
            );
            let _ = tx.blocking_send(Err(err));
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|x| (x, rx))
    }))
}

struct ChanWriter<'a> {
    buf: Vec<u8>,
    tx: &'a mpsc::Sender<Result<Bytes, StoreError>>,
}

const CHUNK: usize = 1 << 20;

impl ChanWriter<'_> {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(b))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "upload abandoned"))
    }
}

impl Write for ChanWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

fn produce(
    path: &std::path::Path,
    size: u64,
    framed: bool,
    level: Option<i32>,
    tx: &mpsc::Sender<Result<Bytes, StoreError>>,
) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    let mut src = f.take(size + 1);
    let mut w = ChanWriter {
        buf: Vec::with_capacity(CHUNK),
        tx,
    };
    if framed {
        w.write_all(&format::OBJECT_MAGIC)?;
        w.write_all(&[if level.is_some() {
            format::CODEC_ZSTD
        } else {
            format::CODEC_RAW
        }])?;
    }
    let n = match level {
        Some(l) => {
            let mut enc = zstd::stream::write::Encoder::new(&mut w, l)?;
            let n = std::io::copy(&mut src, &mut enc)?;
            enc.finish()?;
            n
        }
        None => std::io::copy(&mut src, &mut w)?,
    };
    if n != size {
        return Err(std::io::Error::other(format!(
            "file has {n}+ bytes, expected {size}"
        )));
    }
    w.flush()
}

/// The pseudo action id a manifest is stored under (in `ac/`, so it gets the namespace and
/// plain-layout key mapping of action entries; no real action id collides with it).
fn manifest_id(name: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sgcache manifest v2\0");
    h.update(name);
    h.finalize().into()
}
