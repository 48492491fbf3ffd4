//! [`RemoteCache`]: the remote as a cache — action entries, objects, manifests and packs
//! under sgcache's key layout — built from a [`RemoteConfig`] over any [`Store`].
//!
//! Key layout (relative to the URL's prefix, see `docs/remote.md`):
//!
//! ```text
//! framed (s3, gs, azblob, redis, gha, file):
//!   <namespace>/ac/<action hex>   action entry (format::entry), per trust scope
//!   <namespace>/ac/<manifest id>  build manifest (format::manifest)
//!   cas/<output hex>              object: "SGC" + codec byte + body, shared by all scopes
//!   cas/<pack hex>                pack (format::pack), an object like any other
//! plain (http, https):
//!   ac/<hex>                      action entry; <hex> is the action id in namespace
//!                                 `default`, a namespace-derived hash otherwise
//!   cas/<hex>                     the raw bytes
//! ```
//!
//! Objects are shared across namespaces because they are verified by SHA-256 before
//! anything is written locally; the ActionID → OutputID mapping cannot be verified, so
//! entries and manifests are scoped by namespace and judged by [`Trust`].
//!
//! Every read returns a [`Lookup`] or an error the caller turns into a miss: the remote
//! never fails a build. Uploads go through [`crate::UploadQueue`].

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use sgcache_types::{ActionId, IndexEntry, Metrics, OutputId};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::backend::{Layout, OpendalStore, parse_url};
use crate::config::{Mode, RemoteConfig};
use crate::error::{ErrorKind, StoreError};
use crate::format::manifest::{Manifest, ManifestName, PackRef};
use crate::format::namespace::{encode_namespace, plain_action_key};
use crate::format::object::{CODEC_RAW, CODEC_ZSTD, OBJECT_MAGIC, ObjectDecoder, Verifier};
use crate::format::{EntryRejection, entry, manifest};
use crate::keys::Trust;
use crate::layers::{Breaker, BreakerState, Metered, Retry, RetryPolicy, Timeout};
use crate::store::{Body, ByteStream, Capabilities, Store, read_all};

/// The outcome of a read that can miss: found, not there, or not known (the remote failed;
/// a caller treats it as a miss but must not conclude the key is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// Found and trusted.
    Found(T),
    /// The remote answered: not there (or nothing usable there).
    Missing,
    /// The remote failed (error, timeout, breaker open).
    Failed,
}

impl<T> Lookup<T> {
    /// The value, if found.
    pub fn found(self) -> Option<T> {
        match self {
            Lookup::Found(t) => Some(t),
            _ => None,
        }
    }
}

/// Whose SHA-256 check a download relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The remote cache hashes the bytes and fails the fetch on a mismatch.
    Here,
    /// The sink hashes what it is given and refuses to commit a mismatch (the local tier's
    /// `PendingPut` does); here only the length is enforced, so the bytes are hashed once.
    BySink,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cfg: RemoteConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) layout: Layout,
    pub(crate) caps: Capabilities,
    pub(crate) breaker: Arc<BreakerState>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) trust: Trust,
    pub(crate) label: String,
}

/// The remote cache. Cheap to clone; construction does no network I/O.
#[derive(Debug, Clone)]
pub struct RemoteCache {
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

impl RemoteCache {
    /// Builds the remote from its configuration, counting into `metrics`. Fails only on
    /// configuration problems (bad URL, unknown scheme, a backend not compiled in); never
    /// touches the network.
    pub fn new(cfg: RemoteConfig, metrics: Arc<Metrics>) -> Result<RemoteCache, StoreError> {
        let parsed = parse_url(&cfg.url, &cfg.extra)?;
        let store = OpendalStore::from_parsed(&cfg.url, &parsed, cfg.connect_timeout)?;
        let masked = parsed.masked.clone();
        RemoteCache::with_store(cfg, Arc::new(store), parsed.layout, masked, metrics)
    }

    /// Builds the remote over any [`Store`] (tests, custom backends). The timeout, retry,
    /// metering and breaker layers are added here.
    pub fn with_store(
        cfg: RemoteConfig,
        backend: Arc<dyn Store>,
        layout: Layout,
        label: String,
        metrics: Arc<Metrics>,
    ) -> Result<RemoteCache, StoreError> {
        validate_namespace(&cfg.url, &cfg.namespace)?;
        for ns in &cfg.read_namespaces {
            validate_namespace(&cfg.url, ns)?;
        }
        let caps = backend.capabilities();
        let breaker = Arc::new(BreakerState::new(
            cfg.breaker_threshold,
            cfg.breaker_cooldown,
            crate::config::defaults::BREAKER_MAX_COOLDOWN,
            label.clone(),
            metrics.clone(),
        ));
        let stack = Breaker::new(
            Metered::new(
                Timeout::new(
                    Retry::new(backend, RetryPolicy::default()),
                    cfg.first_byte_timeout,
                    cfg.stall_timeout,
                ),
                metrics.clone(),
            ),
            breaker.clone(),
        );
        let trust = Trust::new(&cfg.trusted_keys, cfg.signing_key.as_ref(), &cfg.namespace);
        Ok(RemoteCache {
            inner: Arc::new(Inner {
                cfg,
                store: Arc::new(stack),
                layout,
                caps,
                breaker,
                metrics,
                trust,
                label,
            }),
        })
    }

    pub(crate) fn s(&self) -> &Inner {
        &self.inner
    }

    /// The URL with secrets masked, the mode and the namespace.
    pub fn describe(&self) -> String {
        let s = self.s();
        format!(
            "{} ({}, namespace {})",
            s.label,
            s.cfg.mode.as_str(),
            s.cfg.namespace
        )
    }

    /// The configuration this remote was built from.
    pub fn config(&self) -> &RemoteConfig {
        &self.s().cfg
    }

    /// The counters this remote adds to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.s().metrics
    }

    /// The circuit breaker.
    pub fn breaker(&self) -> &Arc<BreakerState> {
        &self.s().breaker
    }

    /// The trust policy reads go through.
    pub fn trust(&self) -> &Trust {
        &self.s().trust
    }

    /// Whether the remote may be read / written in this mode.
    pub fn reads(&self) -> bool {
        self.s().cfg.mode != Mode::WriteOnly
    }

    /// Whether this job writes the remote.
    pub fn writes(&self) -> bool {
        self.s().cfg.mode != Mode::ReadOnly
    }

    pub(crate) fn reject(&self, what: &str, key: &str, why: EntryRejection) {
        if why.is_rejection() {
            self.s().metrics.remote_rejected_entries.inc();
            tracing::debug!(key, ?why, "remote: {what} ignored");
        }
    }

    /// Looks up the action entry of `action`: our namespace first, then the read
    /// namespaces; the first one the trust policy accepts wins. An entry claiming an object
    /// larger than the configured maximum is refused (counted). Errors are
    /// [`Lookup::Failed`].
    pub async fn get_entry(&self, action: &ActionId) -> Lookup<IndexEntry> {
        let s = self.s();
        if !self.reads() {
            return Lookup::Missing;
        }
        for ns in s.cfg.read_order() {
            let k = s.ac_key(ns, action);
            let bytes = match self.get_small(&k, entry::MAX_ENTRY).await {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "remote: entry lookup failed");
                    return Lookup::Failed;
                }
            };
            match entry::decode(&bytes, ns, action, &s.trust) {
                Ok(e) if e.size > s.cfg.max_object_size => {
                    s.metrics.remote_oversized.inc();
                    tracing::debug!(key = %k, size = e.size, "remote: entry claims too large an object");
                }
                Ok(e) => return Lookup::Found(e),
                Err(why) => self.reject("action entry", &k, why),
            }
        }
        s.metrics.remote_misses.inc();
        Lookup::Missing
    }

    pub(crate) async fn get_small(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.s().store.get(key).await? {
            None => Ok(None),
            Some(stream) => read_all(stream, key, limit).await.map(Some),
        }
    }

    /// Writes the action entry `e` in our namespace (signed with the signing key, if any).
    pub async fn put_entry(&self, e: &IndexEntry) -> Result<(), StoreError> {
        let s = self.s();
        let ns = &s.cfg.namespace;
        let body = entry::encode(e, ns, s.cfg.signing_key.as_ref());
        s.store
            .put(
                &s.ac_key(ns, &e.action),
                Body::from_bytes(Bytes::from(body)),
            )
            .await
    }

    /// Loads the build manifest `name`: our namespace first, then the read namespaces; the
    /// first one the trust policy accepts wins (a manifest is judged whole). Records claiming
    /// objects over the maximum size are dropped (counted).
    pub async fn get_manifest(&self, name: &ManifestName) -> Lookup<Manifest> {
        let s = self.s();
        if !self.reads() {
            return Lookup::Missing;
        }
        let id = name.storage_id();
        for ns in s.cfg.read_order() {
            let k = s.ac_key(ns, &id);
            let bytes = match self.get_small(&k, manifest::MAX_BYTES).await {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "remote: manifest lookup failed");
                    return Lookup::Failed;
                }
            };
            match manifest::decode(&bytes, ns, name, &s.trust) {
                Ok(mut m) => {
                    let max = s.cfg.max_object_size;
                    let before = m.records.len() + m.packs.len();
                    m.records.retain(|r| r.size <= max);
                    m.packs.retain(|p| p.len <= max);
                    let dropped = before - m.records.len() - m.packs.len();
                    s.metrics.remote_oversized.add(dropped as u64);
                    return Lookup::Found(m);
                }
                Err(why) => self.reject("manifest", &k, why),
            }
        }
        Lookup::Missing
    }

    /// Stores the build manifest `name` in our namespace (signed with the signing key, if
    /// any). Callers check [`RemoteCache::writes`].
    pub async fn put_manifest(&self, name: &ManifestName, m: &Manifest) -> Result<(), StoreError> {
        let s = self.s();
        let ns = &s.cfg.namespace;
        let body = manifest::encode(m, ns, name, s.cfg.signing_key.as_ref());
        let k = s.ac_key(ns, &name.storage_id());
        s.store.put(&k, Body::from_bytes(Bytes::from(body))).await
    }

    /// Streams the object `out` into `sink`, decompressed, never more than `size` bytes;
    /// at the end the length, and with [`Check::Here`] the SHA-256, must match, or a
    /// `Corrupt` error says so (counted) and the caller must discard what it received.
    /// `Ok(false)` on a miss. A `size` over the maximum is refused without a request.
    pub async fn fetch_object(
        &self,
        out: &OutputId,
        size: u64,
        sink: &mut (dyn Write + Send),
        check: Check,
    ) -> Result<bool, StoreError> {
        let s = self.s();
        if !self.reads() {
            return Ok(false);
        }
        if size > s.cfg.max_object_size {
            s.metrics.remote_oversized.inc();
            return Ok(false);
        }
        let key = s.cas_key(out);
        let mut stream = match s.store.get(&key).await? {
            None => {
                s.metrics.remote_misses.inc();
                return Ok(false);
            }
            Some(st) => st,
        };
        let r = async {
            let mut dec = ObjectDecoder::new(
                s.layout == Layout::Framed,
                Verifier::new(sink, size, check == Check::Here),
                &key,
            );
            while let Some(chunk) = stream.next().await {
                dec.push(&chunk?)?;
            }
            dec.finish(out)
        }
        .await;
        match r {
            Ok(_) => {
                s.metrics.remote_hits.inc();
                Ok(true)
            }
            Err(e) => {
                if e.kind() == ErrorKind::Corrupt {
                    s.metrics.remote_corrupt_objects.inc();
                    tracing::debug!(error = %e, "remote: object rejected");
                }
                Err(e)
            }
        }
    }

    /// Whether `cas/<out>` exists (`Ok(false)` where the backend cannot tell cheaply: the
    /// caller then writes).
    pub async fn has_object(&self, out: &OutputId) -> Result<bool, StoreError> {
        let s = self.s();
        if !s.caps.exists {
            return Ok(false);
        }
        s.store.exists(&s.cas_key(out)).await
    }

    /// Uploads the local file `path` (`size` bytes, whose SHA-256 is `out`) as `cas/<out>`,
    /// streamed through zstd in ~1 MiB chunks.
    pub async fn put_object(
        &self,
        out: &OutputId,
        size: u64,
        path: PathBuf,
    ) -> Result<(), StoreError> {
        let s = self.s();
        s.store
            .put(&s.cas_key(out), s.object_body(out, size, path))
            .await
    }

    /// Stores `pack` (a whole pack: directory and objects) under `cas/<its SHA-256>`,
    /// framed and compressed like any object, unless the remote has it already — or even
    /// then, when `heal` names it (this machine found the remote's copy corrupt).
    pub async fn put_pack(
        &self,
        pack: Vec<u8>,
        heal: &std::collections::HashSet<OutputId>,
    ) -> Result<PackRef, StoreError> {
        let (layout, level) = (self.s().layout, self.s().cfg.compression_level);
        let (r, body) = tokio::task::spawn_blocking(move || {
            let id = OutputId::from_bytes(Sha256::digest(&pack).into());
            let len = pack.len() as u64;
            let body = match (layout, level) {
                (Layout::Plain, _) => pack,
                (Layout::Framed, level) => {
                    let mut b = OBJECT_MAGIC.to_vec();
                    match level {
                        Some(l) => {
                            b.push(CODEC_ZSTD);
                            zstd::stream::copy_encode(&pack[..], &mut b, l)?;
                        }
                        None => {
                            b.push(CODEC_RAW);
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
        if !heal.contains(&r.id) && self.has_object(&r.id).await? {
            s.metrics.packs_skipped_existing.inc();
            return Ok(r);
        }
        let stored = body.len() as u64;
        s.store
            .put(&s.cas_key(&r.id), Body::from_bytes(Bytes::from(body)))
            .await?;
        s.metrics.packs_stored.inc();
        s.metrics.pack_bytes_up.add(stored);
        Ok(r)
    }

    /// Streams the pack `pack` into `sink` (decompressed; never more than its length). Its
    /// bytes are not hashed here: the sink verifies every object it keeps (a
    /// [`crate::PackSplitter`] feeding the local tier's `PendingPut`s does).
    pub async fn fetch_pack(
        &self,
        pack: &PackRef,
        sink: &mut (dyn Write + Send),
    ) -> Result<bool, StoreError> {
        let found = self
            .fetch_object(&pack.id, pack.len, sink, Check::BySink)
            .await;
        if matches!(found, Ok(true)) {
            self.s().metrics.packs_fetched.inc();
        }
        found
    }

    /// Checks reachability and credentials with a put, get and delete of a probe object
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
        let id = OutputId::from_bytes(Sha256::digest(nonce.as_bytes()).into());
        let key = s.cas_key(&id);
        if !self.writes() {
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
            stored.extend_from_slice(&OBJECT_MAGIC);
            stored.push(CODEC_RAW);
        }
        stored.extend_from_slice(nonce.as_bytes());
        s.store
            .put(&key, Body::from_bytes(Bytes::from(stored)))
            .await?;
        let mut back = Vec::new();
        let found = match s.store.get(&key).await? {
            None => false,
            Some(stream) => {
                let mut dec = ObjectDecoder::new(
                    s.layout == Layout::Framed,
                    Verifier::new(&mut back, nonce.len() as u64, true),
                    &key,
                );
                let mut stream = stream;
                while let Some(chunk) = stream.next().await {
                    dec.push(&chunk?)?;
                }
                dec.finish(&id)?;
                true
            }
        };
        if !found {
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

impl Inner {
    pub(crate) fn ac_key(&self, ns: &str, action: &ActionId) -> String {
        match self.layout {
            Layout::Framed => format!("{}/ac/{}", encode_namespace(ns), action.hex()),
            Layout::Plain => format!("ac/{}", hex::encode(plain_action_key(ns, action))),
        }
    }

    pub(crate) fn cas_key(&self, out: &OutputId) -> String {
        format!("cas/{}", out.hex())
    }

    fn object_body(&self, out: &OutputId, size: u64, path: PathBuf) -> Body {
        let framed = self.layout == Layout::Framed;
        let level = if framed {
            self.cfg.compression_level
        } else {
            None
        };
        let len = match (framed, level) {
            (_, Some(_)) => None,
            (true, None) => Some(size + 4),
            (false, None) => Some(size),
        };
        let key = self.cas_key(out);
        Body::from_fn(len, move || {
            file_stream(path.clone(), size, framed, level, key.clone())
        })
    }
}

/// Reads `path` on a blocking thread, adds the header and compresses as asked, and streams
/// the result in ~1 MiB chunks with at most two chunks buffered.
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
        buf: Vec::with_capacity(CHUNK.min(size as usize + 64)),
        tx,
    };
    if framed {
        w.write_all(&OBJECT_MAGIC)?;
        w.write_all(&[if level.is_some() {
            CODEC_ZSTD
        } else {
            CODEC_RAW
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
