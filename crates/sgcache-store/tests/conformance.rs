//! One conformance suite, run against every backend whose `SGCACHE_TEST_*_URL` is set
//! (`.ci/servers.sh start` sets them all), and always against `file://` and an in-process
//! scriptable fake store that drives the failure paths.
//!
//! Run: `. <(.ci/servers.sh env) && cargo test -p sgcache-store --test conformance`

#![allow(clippy::print_stderr)] // skip lines go to stderr, by design
#![allow(clippy::disallowed_methods)] // the servers' addresses come from the environment

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sgcache_store::format::namespace::{encode_namespace, plain_action_key};
use sgcache_store::format::pack::encode_header;
use sgcache_store::testing::{Behaviour, FakeStore};
use sgcache_store::{
    Body, Check, DrainReport, ErrorKind, Layout, Manifest, ManifestName, Mode, PackRef,
    PackSplitter, PackTarget, RemoteCache, RemoteConfig, SecretKey, Store, StoreError, UploadJob,
    UploadQueue, open_store, read_all,
};
use sgcache_types::{ActionId, IndexEntry, Metrics, OutputId};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------
// helpers

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A fresh, unpredictable 32-byte id.
fn rand_id() -> [u8; 32] {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    Sha256::digest(format!("{n} {t} {}", std::process::id())).into()
}

/// A namespace unique to this test run (servers may keep data between runs).
fn ns(name: &str) -> String {
    format!("{name}-{}", &hex::encode(rand_id())[..8])
}

/// Incompressible bytes, different in every test run (servers may keep objects between
/// runs, which would turn first uploads into "already there").
fn noise(len: usize, seed: u64) -> Vec<u8> {
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let salt = *SALT.get_or_init(|| u64::from_le_bytes(rand_id()[..8].try_into().unwrap()));
    let mut x = (seed ^ salt) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

struct Obj {
    action: [u8; 32],
    output: [u8; 32],
    data: Vec<u8>,
    path: PathBuf,
    _dir: Arc<tempfile::TempDir>,
}

fn obj(data: Vec<u8>) -> Obj {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let output: [u8; 32] = Sha256::digest(&data).into();
    let path = dir.path().join(hex::encode(output));
    std::fs::write(&path, &data).unwrap();
    Obj {
        action: rand_id(),
        output,
        data,
        path,
        _dir: dir,
    }
}

/// A remote cache and its upload queue, as one test handle.
#[derive(Debug, Clone)]
struct Remote {
    cache: RemoteCache,
    uploads: UploadQueue,
}

impl Remote {
    fn new(cache: RemoteCache) -> Remote {
        let uploads = UploadQueue::start(cache.clone(), &tokio::runtime::Handle::current());
        Remote { cache, uploads }
    }

    fn build(cfg: RemoteConfig) -> Result<Remote, StoreError> {
        Ok(Remote::new(RemoteCache::new(
            cfg,
            Arc::new(Metrics::default()),
        )?))
    }

    async fn get_action(&self, a: &[u8; 32]) -> Option<IndexEntry> {
        self.cache.get_entry(&ActionId::from(*a)).await.found()
    }

    async fn drain(&self) -> DrainReport {
        self.uploads
            .drain(self.cache.config().upload_deadline)
            .await
    }

    fn is_disabled(&self) -> bool {
        self.cache.breaker().is_open()
    }

    async fn fetch_object(
        &self,
        out: &[u8; 32],
        size: u64,
        sink: &mut (dyn Write + Send),
    ) -> Result<bool, StoreError> {
        self.cache
            .fetch_object(&OutputId::from(*out), size, sink, Check::Here)
            .await
    }

    async fn get_manifest(&self, name: &[u8; 32]) -> Manifest {
        self.cache
            .get_manifest(&ManifestName(*name))
            .await
            .found()
            .unwrap_or_default()
    }

    fn describe(&self) -> String {
        self.cache.describe()
    }

    fn counters(&self) -> sgcache_types::MetricsSnapshot {
        self.cache.metrics().snapshot()
    }
}

fn upload(r: &Remote, o: &Obj) {
    let _ = r.uploads.enqueue(UploadJob {
        entry: IndexEntry {
            action: o.action.into(),
            output: o.output.into(),
            size: o.data.len() as u64,
            time_nanos: 1_700_000_000_123_456_789,
        },
        path: o.path.clone(),
        heal: false,
    });
}

/// The bytes the backing store holds under `key` (bypassing sgcache's decoding).
async fn backing_bytes(raw: &Arc<dyn Store>, key: &str) -> Vec<u8> {
    let stream = raw
        .get(key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} missing"));
    read_all(stream, key, 1 << 30).await.unwrap()
}

async fn fetch(r: &Remote, output: &[u8; 32], size: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let mut buf = Vec::new();
    let found = r.fetch_object(output, size, &mut buf).await?;
    Ok(found.then_some(buf))
}

fn counter(r: &Remote, name: &str) -> u64 {
    r.counters()
        .fields()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no counter {name}"))
        .value
}

/// How to build remotes for one backend.
#[derive(Clone)]
struct Backend {
    name: &'static str,
    url: String,
    extra: BTreeMap<String, String>,
    /// For the fake store: a shared in-memory map.
    fake: Option<Arc<FakeStore>>,
    /// The server's own data directory for this URL's prefix, when it stores keys as
    /// plain files (s3s-fs, nginx): lets a test corrupt objects behind the server's back.
    data_dir: Option<PathBuf>,
}

impl Backend {
    fn cfg(&self, namespace: &str) -> RemoteConfig {
        let mut c = RemoteConfig::new(self.url.clone());
        c.namespace = namespace.to_string();
        c.extra = self.extra.clone();
        c.first_byte_timeout = Duration::from_secs(20);
        c.upload_deadline = Duration::from_secs(60);
        c
    }

    fn remote(&self, cfg: RemoteConfig) -> Remote {
        match &self.fake {
            Some(f) => Remote::new(
                RemoteCache::with_store(
                    cfg,
                    f.clone(),
                    Layout::Framed,
                    "fake://".into(),
                    Arc::new(Metrics::default()),
                )
                .unwrap(),
            ),
            None => Remote::build(cfg).unwrap(),
        }
    }

    fn raw(&self) -> (Arc<dyn Store>, Layout) {
        match &self.fake {
            Some(f) => (f.clone(), Layout::Framed),
            None => open_store(&self.url, &self.extra).unwrap(),
        }
    }
}

fn env_backend(name: &'static str, var: &str, extra: &[(&str, &str)]) -> Option<Backend> {
    let Ok(url) = std::env::var(var) else {
        eprintln!(
            "SKIP conformance[{name}]: {var} is not set (run `.ci/servers.sh start` and source its env file)"
        );
        return None;
    };
    let mut e = BTreeMap::new();
    for (k, envvar) in extra {
        if let Ok(v) = std::env::var(envvar) {
            e.insert(k.to_string(), v);
        }
    }
    let data_dir = std::env::var(var.replace("_URL", "_DATA"))
        .ok()
        .map(PathBuf::from);
    Some(Backend {
        name,
        url,
        extra: e,
        fake: None,
        data_dir,
    })
}

// ---------------------------------------------------------------------------------------
// the suite

/// `SGCACHE_TEST_LOG=sgcache_store=debug` shows the layers' debug lines (upload errors…).
fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SGCACHE_TEST_LOG"))
        .with_test_writer()
        .try_init();
}

async fn suite(b: &Backend) {
    init_log();
    let t0 = Instant::now();
    miss(b).await;
    put_then_get(b).await;
    idempotent_reput(b).await;
    concurrent_puts_one_key(b).await;
    empty_object(b).await;
    compressed_and_plain_coexist(b).await;
    namespaces(b).await;
    signatures(b).await;
    corrupted_object_is_never_accepted(b).await;
    probe(b).await;
    manifests_and_packs(b).await;
    big_object(b).await;
    eprintln!(
        "conformance[{}]: all cases passed in {:?}",
        b.name,
        t0.elapsed()
    );
}

async fn miss(b: &Backend) {
    let r = b.remote(b.cfg(&ns("miss")));
    assert_eq!(r.get_action(&rand_id()).await, None, "[{}] miss", b.name);
    assert_eq!(
        fetch(&r, &rand_id(), 10).await.unwrap(),
        None,
        "[{}] object miss",
        b.name
    );
    assert_eq!(counter(&r, "remote_misses"), 2);
    assert_eq!(
        counter(&r, "remote_errors"),
        0,
        "[{}] a miss is not an error",
        b.name
    );
}

async fn roundtrip(b: &Backend, r: &Remote, o: &Obj) {
    let e = r
        .get_action(&o.action)
        .await
        .unwrap_or_else(|| panic!("[{}] entry missing", b.name));
    assert_eq!(e.output, OutputId::from(o.output));
    assert_eq!(e.size, o.data.len() as u64);
    assert_eq!(e.time_nanos, 1_700_000_000_123_456_789);
    let got = fetch(r, &o.output, e.size)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("[{}] object missing", b.name));
    assert!(got == o.data, "[{}] object bytes differ", b.name);
}

async fn put_then_get(b: &Backend) {
    let r = b.remote(b.cfg(&ns("put")));
    let o = obj(noise(10_000, 1));
    upload(&r, &o);
    let rep = r.drain().await;
    assert_eq!(
        (rep.completed, rep.failed, rep.dropped, rep.abandoned),
        (1, 0, 0, 0),
        "[{}] {rep:?}",
        b.name
    );
    roundtrip(b, &r, &o).await;
    assert!(counter(&r, "remote_bytes_up") > 0 && counter(&r, "remote_bytes_down") > 0);
    assert_eq!(counter(&r, "remote_hits"), 1);
}

async fn idempotent_reput(b: &Backend) {
    let r = b.remote(b.cfg(&ns("reput")));
    let o = obj([&b"same bytes twice "[..], &noise(8, 10)].concat());
    upload(&r, &o);
    assert!(r.drain().await.is_clean());
    upload(&r, &o);
    let rep = r.drain().await;
    assert!(rep.is_clean() && rep.completed == 2, "[{}] {rep:?}", b.name);
    roundtrip(b, &r, &o).await;
    // The object was already there the second time (where the backend can tell cheaply).
    let (raw, _) = b.raw();
    if raw.capabilities().exists {
        assert_eq!(counter(&r, "uploads_skipped_existing"), 1, "[{}]", b.name);
    }
}

async fn concurrent_puts_one_key(b: &Backend) {
    let mut cfg = b.cfg(&ns("conc"));
    cfg.upload_concurrency = 8;
    let r = b.remote(cfg);
    let o = obj(noise(300_000, 2));
    for _ in 0..8 {
        upload(&r, &o);
    }
    let rep = r.drain().await;
    assert!(rep.is_clean() && rep.completed == 8, "[{}] {rep:?}", b.name);
    roundtrip(b, &r, &o).await;
}

async fn empty_object(b: &Backend) {
    let r = b.remote(b.cfg(&ns("empty")));
    let o = obj(Vec::new());
    upload(&r, &o);
    assert!(r.drain().await.is_clean(), "[{}]", b.name);
    roundtrip(b, &r, &o).await;
}

async fn big_object(b: &Backend) {
    let r = b.remote(b.cfg(&ns("big")));
    let o = obj(noise(64 << 20, 3));
    let t = Instant::now();
    upload(&r, &o);
    let rep = r.drain().await;
    assert!(rep.is_clean(), "[{}] 64 MB upload: {rep:?}", b.name);
    roundtrip(b, &r, &o).await;
    eprintln!(
        "conformance[{}]: 64 MiB up+down in {:?}",
        b.name,
        t.elapsed()
    );
}

async fn compressed_and_plain_coexist(b: &Backend) {
    let space = ns("codec");
    let mut zc = b.cfg(&space);
    zc.compression_level = Some(3);
    let mut pc = b.cfg(&space);
    pc.compression_level = None;
    let (z, p) = (b.remote(zc), b.remote(pc));
    // Compressible data written compressed, raw data that starts with the zstd magic
    // written plain; each remote reads the other's.
    let oz = obj([noise(8, 16), b"compressible ".repeat(20_000)].concat());
    let op = obj(zstd::encode_all(&noise(64, 17)[..], 1).unwrap());
    upload(&z, &oz);
    upload(&p, &op);
    assert!(z.drain().await.is_clean() && p.drain().await.is_clean());
    roundtrip(b, &p, &oz).await;
    roundtrip(b, &z, &op).await;
    let (raw, layout) = b.raw();
    if layout == Layout::Framed {
        let key = format!("cas/{}", hex::encode(oz.output));
        let stored = backing_bytes(&raw, &key).await;
        assert_eq!(
            &stored[..4],
            b"SGC\x01",
            "[{}] compressed object header",
            b.name
        );
        assert!(
            stored.len() < oz.data.len() / 10,
            "[{}] not compressed",
            b.name
        );
        let key = format!("cas/{}", hex::encode(op.output));
        let stored = backing_bytes(&raw, &key).await;
        assert_eq!(&stored[..4], b"SGC\x00");
        assert_eq!(&stored[4..], &op.data[..]);
    } else {
        // Plain HTTP caches see the raw bytes under cas/<sha256>.
        let key = format!("cas/{}", hex::encode(oz.output));
        let stored = backing_bytes(&raw, &key).await;
        assert!(
            stored == oz.data,
            "[{}] plain layout must store raw bytes",
            b.name
        );
    }
}

/// Collects the objects of a pack.
#[derive(Default)]
struct Collect(Vec<(OutputId, Vec<u8>)>);

impl PackTarget for Collect {
    fn begin(&mut self, id: &OutputId, _size: u64) -> std::io::Result<bool> {
        self.0.push((*id, Vec::new()));
        Ok(true)
    }
    fn data(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.0.last_mut().expect("begun").1.extend_from_slice(b);
        Ok(())
    }
    fn end(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A manifest with packs round-trips in its namespace (and is absent from another); a pack
/// is stored once (compressed where the layout frames objects), and streams back whole.
async fn manifests_and_packs(b: &Backend) {
    let space = ns("packs");
    let r = b.remote(b.cfg(&space));
    let objs: Vec<(OutputId, Vec<u8>)> =
        [noise(3000, 41), Vec::new(), b"compressible ".repeat(50_000)]
            .into_iter()
            .map(|d| (OutputId::from(<[u8; 32]>::from(Sha256::digest(&d))), d))
            .collect();
    let header: Vec<(OutputId, u64)> = objs.iter().map(|(i, d)| (*i, d.len() as u64)).collect();
    let mut pack = encode_header(&header);
    for (_, d) in &objs {
        pack.extend_from_slice(d);
    }
    let p = r
        .cache
        .put_pack(pack.clone(), &Default::default())
        .await
        .unwrap();
    assert_eq!(p.len, pack.len() as u64);
    assert_eq!(
        p.id,
        OutputId::from(<[u8; 32]>::from(Sha256::digest(&pack)))
    );
    assert_eq!(counter(&r, "packs_stored"), 1, "[{}]", b.name);
    let again = r
        .cache
        .put_pack(pack.clone(), &Default::default())
        .await
        .unwrap();
    assert_eq!(again, p);
    let (raw, layout) = b.raw();
    if raw.capabilities().exists {
        assert_eq!(
            counter(&r, "packs_skipped_existing"),
            1,
            "[{}] a pack the remote has is not uploaded again",
            b.name
        );
    }
    let key = format!("cas/{}", p.id.hex());
    let stored = backing_bytes(&raw, &key).await;
    if layout == Layout::Framed {
        assert_eq!(&stored[..4], b"SGC\x01", "[{}] pack header", b.name);
        assert!(
            stored.len() < pack.len() / 4,
            "[{}] pack not compressed",
            b.name
        );
    } else {
        assert!(stored == pack, "[{}] plain layout stores packs raw", b.name);
    }
    let mut sp = PackSplitter::new(Collect::default());
    assert!(
        r.cache.fetch_pack(&p, &mut sp).await.unwrap(),
        "[{}] pack missing",
        b.name
    );
    assert!(sp.is_complete());
    assert!(
        sp.into_target().0 == objs,
        "[{}] pack objects differ",
        b.name
    );
    assert_eq!(counter(&r, "packs_fetched"), 1);

    let name = rand_id();
    let records: Vec<IndexEntry> = objs
        .iter()
        .map(|(i, d)| IndexEntry {
            action: rand_id().into(),
            output: *i,
            size: d.len() as u64,
            time_nanos: 7,
        })
        .collect();
    let m = Manifest {
        records: records.clone(),
        packs: vec![p],
        misses: vec![],
    };
    r.cache.put_manifest(&ManifestName(name), &m).await.unwrap();
    let m = r.get_manifest(&name).await;
    assert_eq!(m.records, records, "[{}] manifest records", b.name);
    assert_eq!(
        m.packs,
        vec![p] as Vec<PackRef>,
        "[{}] manifest packs",
        b.name
    );
    let other = b.remote(b.cfg(&ns("packs-other")));
    assert!(
        other.get_manifest(&name).await.records.is_empty(),
        "[{}] a manifest is read only from the namespaces one trusts",
        b.name
    );
}

async fn namespaces(b: &Backend) {
    let (main, pr) = (ns("main"), ns("pr"));
    let w_pr = b.remote(b.cfg(&pr));
    let w_main = b.remote(b.cfg(&main));
    let o_pr = obj(noise(1000, 4));
    let o_main = obj(noise(1000, 5));
    upload(&w_pr, &o_pr);
    upload(&w_main, &o_main);
    assert!(w_pr.drain().await.is_clean() && w_main.drain().await.is_clean());

    // A reader in `main` never sees what the PR namespace wrote (poisoning).
    let r_main = b.remote(b.cfg(&main));
    assert_eq!(
        r_main.get_action(&o_pr.action).await,
        None,
        "[{}] cross-namespace read",
        b.name
    );
    roundtrip(b, &r_main, &o_main).await;

    // A PR reader falls back to main, in order.
    let mut c = b.cfg(&ns("pr2"));
    c.read_namespaces = vec![main.clone()];
    let r_pr2 = b.remote(c);
    roundtrip(b, &r_pr2, &o_main).await;
    assert_eq!(r_pr2.get_action(&o_pr.action).await, None);

    // Read-only: nothing is written.
    let mut c = b.cfg(&ns("ro"));
    c.mode = Mode::ReadOnly;
    c.read_namespaces = vec![main.clone()];
    let ro = b.remote(c.clone());
    let o_ro = obj(noise(100, 6));
    upload(&ro, &o_ro);
    let rep = ro.drain().await;
    assert_eq!(rep.completed + rep.failed + rep.dropped, 0);
    roundtrip(b, &ro, &o_main).await;
    c.mode = Mode::ReadWrite;
    assert_eq!(
        b.remote(c).get_action(&o_ro.action).await,
        None,
        "[{}] read-only wrote",
        b.name
    );

    // Write-only: writes, never reads.
    let mut c = b.cfg(&main);
    c.mode = Mode::WriteOnly;
    let wo = b.remote(c);
    assert_eq!(wo.get_action(&o_main.action).await, None);
    assert_eq!(fetch(&wo, &o_main.output, 1000).await.unwrap(), None);
}

async fn signatures(b: &Backend) {
    let space = ns("signed");
    let (k1, k2) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    // A writer holding a key, and one holding none.
    let keyed = |k: &SecretKey, ns: &str| {
        let mut c = b.cfg(ns);
        c.signing_key = Some(k.clone());
        c
    };
    let w_k1 = b.remote(keyed(&k1, &space));
    let w_none = b.remote(b.cfg(&space));
    let signed = obj(noise(500, 7));
    let unsigned = obj(noise(500, 8));
    upload(&w_k1, &signed);
    upload(&w_none, &unsigned);
    assert!(w_k1.drain().await.is_clean() && w_none.drain().await.is_clean());

    // The key holder itself reads signed entries only, even in its own namespace.
    let r_k1 = b.remote(keyed(&k1, &space));
    roundtrip(b, &r_k1, &signed).await;
    assert_eq!(
        r_k1.get_action(&unsigned.action).await,
        None,
        "[{}] unsigned accepted",
        b.name
    );
    assert_eq!(counter(&r_k1, "remote_rejected_entries"), 1);

    // A reader trusting another key, reading the namespace as another job's.
    let mut c = b.cfg(&ns("reader"));
    c.read_namespaces = vec![space.clone()];
    c.trusted_keys = vec![k2.public().clone()];
    let r_k2 = b.remote(c);
    assert_eq!(
        r_k2.get_action(&signed.action).await,
        None,
        "[{}] foreign key accepted",
        b.name
    );
    // ... and one trusting k1 (public key only): signed yes, unsigned no.
    let mut c = b.cfg(&ns("reader"));
    c.read_namespaces = vec![space.clone()];
    c.trusted_keys = vec![k1.public().clone()];
    let r_pub = b.remote(c);
    roundtrip(b, &r_pub, &signed).await;
    assert_eq!(r_pub.get_action(&unsigned.action).await, None);

    // Without trusted keys, both are readable.
    let r_none = b.remote(b.cfg(&space));
    roundtrip(b, &r_none, &signed).await;
    roundtrip(b, &r_none, &unsigned).await;

    // Replaying a signed entry into another namespace (copying the ac/ value) fails.
    let (raw, layout) = b.raw();
    let other = ns("other");
    let action = ActionId::from(signed.action);
    let (from, to) = match layout {
        Layout::Framed => (
            format!("{}/ac/{}", encode_namespace(&space), action.hex()),
            format!("{}/ac/{}", encode_namespace(&other), action.hex()),
        ),
        Layout::Plain => (
            format!("ac/{}", hex::encode(plain_action_key(&space, &action))),
            format!("ac/{}", hex::encode(plain_action_key(&other, &action))),
        ),
    };
    let entry = read_all(raw.get(&from).await.unwrap().unwrap(), &from, 4096)
        .await
        .unwrap();
    raw.put(&to, Body::from_bytes(Bytes::from(entry)))
        .await
        .unwrap();
    assert_eq!(
        b.remote(keyed(&k1, &other))
            .get_action(&signed.action)
            .await,
        None,
        "[{}] replayed entry accepted",
        b.name
    );
}

async fn corrupted_object_is_never_accepted(b: &Backend) {
    let r = b.remote(b.cfg(&ns("corrupt")));
    let o = obj(noise(5000, 9));
    upload(&r, &o);
    assert!(r.drain().await.is_clean());
    // Overwrite cas/<hex> directly in the backing store: same length, one byte flipped,
    // in the layout's own framing so only the hash check can catch it.
    let (raw, layout) = b.raw();
    let key = format!("cas/{}", hex::encode(o.output));
    let mut bad = o.data.clone();
    bad[100] ^= 0xff;
    let stored = if layout == Layout::Framed {
        [&b"SGC\0"[..], &bad].concat()
    } else {
        bad
    };
    raw.put(&key, Body::from_bytes(Bytes::from(stored)))
        .await
        .unwrap();
    let mut sink = Vec::new();
    let err = r
        .fetch_object(&o.output, 5000, &mut sink)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "[{}] {err}", b.name);
    assert!(sink.len() <= 5000);
    assert_eq!(counter(&r, "remote_corrupt_objects"), 1);
    // A longer object never pushes more than `size` bytes into the sink.
    let long = if layout == Layout::Framed {
        [&b"SGC\0"[..], &noise(9000, 1)].concat()
    } else {
        noise(9000, 1)
    };
    raw.put(&key, Body::from_bytes(Bytes::from(long)))
        .await
        .unwrap();
    let mut sink = Vec::new();
    assert_eq!(
        r.fetch_object(&o.output, 5000, &mut sink)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Corrupt
    );
    assert!(
        sink.len() <= 5000,
        "[{}] wrote {} bytes past size",
        b.name,
        sink.len()
    );
    assert!(!r.is_disabled(), "corrupt data must not trip the breaker");

    // Where the server keeps plain files, corrupt one behind its back too.
    if let Some(dir) = &b.data_dir {
        let o = obj(noise(5000, 19));
        upload(&r, &o);
        assert!(r.drain().await.is_clean());
        let file = dir.join("cas").join(hex::encode(o.output));
        let mut stored = std::fs::read(&file)
            .unwrap_or_else(|e| panic!("[{}] `{}`: {e}", b.name, file.display()));
        let last = stored.len() - 1;
        stored[last] ^= 0x55;
        std::fs::write(&file, &stored).unwrap();
        let mut sink = Vec::new();
        let err = r
            .fetch_object(&o.output, 5000, &mut sink)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "[{}] {err}", b.name);
        assert!(sink.len() <= 5000);
        eprintln!(
            "conformance[{}]: object corrupted on the server's disk rejected: {err}",
            b.name
        );
    }
}

async fn probe(b: &Backend) {
    let r = b.remote(b.cfg(&ns("probe")));
    let msg = r
        .cache
        .probe()
        .await
        .unwrap_or_else(|e| panic!("[{}] probe: {e}", b.name));
    assert!(msg.contains("ok"), "{msg}");
    let mut c = b.cfg(&ns("probe"));
    c.mode = Mode::ReadOnly;
    b.remote(c).cache.probe().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// backends

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    suite(&Backend {
        name: "file",
        url,
        extra: BTreeMap::new(),
        fake: None,
        data_dir: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_fake() {
    suite(&Backend {
        name: "fake",
        url: "fake://".into(),
        extra: BTreeMap::new(),
        fake: Some(FakeStore::new()),
        data_dir: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_s3() {
    let Some(b) = env_backend(
        "s3",
        "SGCACHE_TEST_S3_URL",
        &[
            ("access_key_id", "SGCACHE_TEST_S3_ACCESS_KEY"),
            ("secret_access_key", "SGCACHE_TEST_S3_SECRET_KEY"),
        ],
    ) else {
        return;
    };
    suite(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_redis() {
    let Some(b) = env_backend("redis", "SGCACHE_TEST_REDIS_URL", &[]) else {
        return;
    };
    suite(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_http_webdav() {
    let Some(b) = env_backend("http", "SGCACHE_TEST_HTTP_URL", &[]) else {
        return;
    };
    suite(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_azblob() {
    let Some(b) = env_backend(
        "azblob",
        "SGCACHE_TEST_AZBLOB_URL",
        &[("account_key", "SGCACHE_TEST_AZBLOB_ACCOUNT_KEY")],
    ) else {
        return;
    };
    suite(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_gcs() {
    let Some(b) = env_backend("gcs", "SGCACHE_TEST_GCS_URL", &[]) else {
        return;
    };
    suite(&b).await;
}

// ---------------------------------------------------------------------------------------
// the scriptable fake store (`sgcache_store::testing`)

fn fake_remote(f: &Arc<FakeStore>, tweak: impl FnOnce(&mut RemoteConfig)) -> Remote {
    Remote::new(f.remote(tweak))
}

/// Captures tracing output so tests can count warning lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let me = self.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || me.clone())
            .with_max_level(tracing::Level::WARN)
            .finish();
        tracing::subscriber::set_default(sub)
    }
    fn warnings(&self) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches("switched off")
            .count()
    }
}

#[tokio::test]
async fn fake_errors_become_misses_and_breaker_opens_once() {
    let logs = Captured::default();
    let _g = logs.install();
    let f = FakeStore::new();
    let r = fake_remote(&f, |c| c.breaker_threshold = 3);
    // It answers once (a miss), so later failures count towards the threshold.
    assert_eq!(r.get_action(&rand_id()).await, None);
    f.set(Behaviour::Fail(ErrorKind::Temporary));
    for _ in 0..2 {
        assert_eq!(r.get_action(&rand_id()).await, None);
        assert!(!r.is_disabled(), "two failures are under the threshold");
    }
    assert_eq!(r.get_action(&rand_id()).await, None);
    assert!(r.is_disabled());
    // 1 answer, then 3 operations × 3 attempts each (temporary errors are retried).
    assert_eq!(f.total_requests(), 10);
    // Once open: no more I/O, still misses, puts stay local, one warning only.
    for _ in 0..10 {
        assert_eq!(r.get_action(&rand_id()).await, None);
        assert!(matches!(
            fetch(&r, &rand_id(), 1).await,
            Err(StoreError::BreakerOpen)
        ));
    }
    let o = obj(b"x".to_vec());
    upload(&r, &o);
    r.drain().await;
    assert_eq!(f.total_requests(), 10);
    assert_eq!(
        logs.warnings(),
        1,
        "{}",
        String::from_utf8_lossy(&logs.0.lock().unwrap())
    );
    assert_eq!(counter(&r, "remote_errors"), 3);
    assert_eq!(counter(&r, "breaker_trips"), 1);
}

#[tokio::test]
async fn a_remote_that_never_answered_is_down_after_one_failure() {
    let f = FakeStore::new();
    f.set(Behaviour::Fail(ErrorKind::Temporary));
    let r = fake_remote(&f, |c| c.breaker_threshold = 100);
    assert_eq!(r.get_action(&rand_id()).await, None);
    assert!(
        r.is_disabled(),
        "no answer since start: down, not flaky, whatever the threshold"
    );
    // One operation, its 3 attempts; then nothing more reaches the store.
    assert_eq!(f.total_requests(), 3);
    assert_eq!(r.get_action(&rand_id()).await, None);
    assert_eq!(f.total_requests(), 3);
}

#[tokio::test]
async fn fake_permanent_errors_are_not_retried() {
    let f = FakeStore::new();
    f.set(Behaviour::Fail(ErrorKind::Permanent));
    let r = fake_remote(&f, |_| {});
    assert_eq!(r.get_action(&rand_id()).await, None);
    assert_eq!(f.total_requests(), 1);
}

#[tokio::test]
async fn fake_auth_error_opens_breaker_at_once() {
    let logs = Captured::default();
    let _g = logs.install();
    let f = FakeStore::new();
    f.set(Behaviour::Fail(ErrorKind::Auth));
    let r = fake_remote(&f, |c| c.breaker_threshold = 100);
    assert_eq!(r.get_action(&rand_id()).await, None);
    assert!(r.is_disabled());
    assert_eq!(logs.warnings(), 1);
    assert!(String::from_utf8_lossy(&logs.0.lock().unwrap()).contains("credentials"));
}

#[tokio::test]
async fn fake_transient_blip_is_retried_transparently() {
    let f = FakeStore::new();
    let r = fake_remote(&f, |_| {});
    let o = obj(noise(2000, 11));
    upload(&r, &o);
    assert!(r.drain().await.is_clean());
    f.set(Behaviour::FailFirst(2));
    assert!(r.get_action(&o.action).await.is_some());
    assert_eq!(counter(&r, "remote_errors"), 0);
}

#[tokio::test]
async fn fake_slow_remote_times_out_quickly() {
    let f = FakeStore::new();
    f.set(Behaviour::Slow(Duration::from_secs(30)));
    let r = fake_remote(&f, |c| c.first_byte_timeout = Duration::from_millis(100));
    let t = Instant::now();
    assert_eq!(r.get_action(&rand_id()).await, None);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(counter(&r, "remote_errors"), 1);
}

#[tokio::test]
async fn fake_full_queue_drops_and_deadline_abandons() {
    let f = FakeStore::new();
    f.set(Behaviour::Slow(Duration::from_secs(30)));
    let r = fake_remote(&f, |c| {
        c.upload_queue = 2;
        c.upload_concurrency = 1;
        c.first_byte_timeout = Duration::from_secs(60);
        c.upload_deadline = Duration::from_millis(200);
    });
    let o = obj(b"abc".to_vec());
    for _ in 0..10 {
        upload(&r, &o);
    }
    tokio::task::yield_now().await;
    let t = Instant::now();
    let rep = r.drain().await;
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(rep.dropped >= 7, "{rep:?}");
    assert!(rep.abandoned >= 1, "{rep:?}");
    assert_eq!(rep.completed, 0);
    assert_eq!(counter(&r, "upload_dropped"), rep.dropped);
}

#[tokio::test]
async fn fake_read_only_and_write_only_do_no_io_in_the_other_direction() {
    let f = FakeStore::new();
    let ro = fake_remote(&f, |c| c.mode = Mode::ReadOnly);
    let o = obj(b"abc".to_vec());
    upload(&ro, &o);
    ro.drain().await;
    assert_eq!(f.total_requests(), 0);
    let wo = fake_remote(&f, |c| c.mode = Mode::WriteOnly);
    assert_eq!(wo.get_action(&o.action).await, None);
    assert_eq!(fetch(&wo, &o.output, 3).await.unwrap(), None);
    assert_eq!(f.total_requests(), 0);
}

#[tokio::test]
async fn fake_truncated_and_garbage_objects_are_rejected() {
    let f = FakeStore::new();
    let r = fake_remote(&f, |_| {});
    let o = obj(noise(100_000, 12));
    let key = format!("cas/{}", hex::encode(o.output));
    let z = [&b"SGC\x01"[..], &zstd::encode_all(&o.data[..], 3).unwrap()].concat();
    for (what, stored) in [
        ("truncated zstd", z[..z.len() / 2].to_vec()),
        ("garbage codec", b"SGC\x07hello".to_vec()),
        ("no header", o.data.clone()),
        ("empty", Vec::new()),
    ] {
        f.put_raw(&key, stored);
        let mut sink = Vec::new();
        let e = r
            .fetch_object(&o.output, 100_000, &mut sink)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {e}");
    }
    assert!(!r.is_disabled());
}

#[tokio::test]
async fn bad_urls_are_one_line_config_errors() {
    for (url, needle) in [
        ("ftp://host/x", "unknown scheme `ftp`"),
        ("not a url", "not a URL"),
        ("s3:///prefix", "missing bucket"),
        ("redis://h:1/notanumber", "is not a number"),
    ] {
        let e = Remote::build(RemoteConfig::new(url)).err().unwrap();
        let s = e.to_string();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(s.contains(needle), "{url}: {s}");
        assert!(!s.contains('\n'));
    }
    let e = Remote::build(RemoteConfig::new("ftp://h/x"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("s3://bucket/prefix") && e.contains("file:///path"),
        "{e}"
    );
}

#[tokio::test]
async fn describe_masks_secrets() {
    let r = Remote::build(RemoteConfig::new("redis://user:hunter2@127.0.0.1:1/0")).unwrap();
    assert!(!r.describe().contains("hunter2"), "{}", r.describe());
    let r = Remote::build(RemoteConfig::new(
        "s3://b/p?region=x&endpoint=http://127.0.0.1:1&secret_access_key=hunter2",
    ))
    .unwrap();
    assert!(!r.describe().contains("hunter2"), "{}", r.describe());
}

// ---------------------------------------------------------------------------------------
// faults against real servers

/// Remote down at start: construction succeeds, gets are quick misses, the breaker opens.
#[tokio::test]
async fn real_remote_down_at_start() {
    let logs = Captured::default();
    let _g = logs.install();
    let port = closed_port();
    for url in [
        format!(
            "s3://b/p?region=us-east-1&endpoint=http://127.0.0.1:{port}&access_key_id=a&secret_access_key=b"
        ),
        format!("http://127.0.0.1:{port}/cache"),
        format!("redis://127.0.0.1:{port}/0"),
    ] {
        let mut c = RemoteConfig::new(url.clone());
        c.breaker_threshold = 3;
        c.first_byte_timeout = Duration::from_secs(5);
        let r = Remote::build(c).unwrap();
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.get_action(&rand_id()).await, None, "{url}");
        }
        assert!(
            r.is_disabled(),
            "{url}: breaker not open: {:?}",
            r.counters()
        );
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{url}: {:?}",
            t.elapsed()
        );
        let t = Instant::now();
        assert_eq!(r.get_action(&rand_id()).await, None);
        assert!(t.elapsed() < Duration::from_millis(50));
    }
    assert_eq!(logs.warnings(), 3);
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Wrong credentials: one clear warning, then local-only.
#[tokio::test]
async fn real_s3_wrong_credentials() {
    let Ok(url) = std::env::var("SGCACHE_TEST_S3_URL") else {
        eprintln!("SKIP real_s3_wrong_credentials: SGCACHE_TEST_S3_URL is not set");
        return;
    };
    let logs = Captured::default();
    let _g = logs.install();
    let mut c = RemoteConfig::new(url);
    c.extra.insert(
        "access_key_id".into(),
        std::env::var("SGCACHE_TEST_S3_ACCESS_KEY").unwrap_or_default(),
    );
    c.extra
        .insert("secret_access_key".into(), "definitely-wrong".into());
    let r = Remote::build(c).unwrap();
    assert_eq!(r.get_action(&rand_id()).await, None);
    assert!(r.is_disabled(), "{:?}", r.counters());
    let o = obj(b"abc".to_vec());
    upload(&r, &o);
    r.drain().await;
    assert_eq!(r.get_action(&rand_id()).await, None);
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert_eq!(logs.warnings(), 1, "{text}");
    assert!(text.contains("credentials"), "{text}");
    assert!(r.cache.probe().await.is_err());
}

/// A private redis-server, killed mid-run.
#[tokio::test]
async fn real_remote_killed_mid_build() {
    if std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIP real_remote_killed_mid_build: redis-server not installed");
        return;
    }
    let port = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port).await;
    let mut c = RemoteConfig::new(format!("redis://127.0.0.1:{port}/0"));
    c.breaker_threshold = 3;
    c.first_byte_timeout = Duration::from_secs(3);
    let r = Remote::build(c).unwrap();
    let o = obj(noise(4000, 13));
    upload(&r, &o);
    assert!(r.drain().await.is_clean());
    assert!(r.get_action(&o.action).await.is_some());

    child.kill().await.unwrap();
    let t = Instant::now();
    for _ in 0..4 {
        assert_eq!(r.get_action(&o.action).await, None);
    }
    let o2 = obj(noise(10, 14));
    upload(&r, &o2);
    let rep = r.drain().await;
    assert!(r.is_disabled(), "{:?}", r.counters());
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert_eq!(rep.completed, 1);
}

async fn wait_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("port {port} never opened");
}

/// A TCP proxy that delays every chunk by `delay`.
async fn latency_proxy(upstream: std::net::SocketAddr, delay: Duration) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((down, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                let pump = |mut r: tokio::net::tcp::OwnedReadHalf,
                            mut w: tokio::net::tcp::OwnedWriteHalf| async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        tokio::time::sleep(delay).await;
                        if w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = w.shutdown().await;
                };
                let a = tokio::spawn(pump(dr, uw));
                let b2 = tokio::spawn(pump(ur, dw));
                let _ = tokio::join!(a, b2);
            });
        }
    });
    port
}

/// A slow remote (nginx behind a latency proxy): slow but correct with a generous timeout,
/// a quick miss with a tight one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_slow_remote_through_latency_proxy() {
    let Ok(url) = std::env::var("SGCACHE_TEST_HTTP_URL") else {
        eprintln!("SKIP real_slow_remote_through_latency_proxy: SGCACHE_TEST_HTTP_URL is not set");
        return;
    };
    let u = url::Url::parse(&url).unwrap();
    let upstream =
        std::net::SocketAddr::new(u.host_str().unwrap().parse().unwrap(), u.port().unwrap());
    let port = latency_proxy(upstream, Duration::from_millis(300)).await;
    let slow_url = format!("http://127.0.0.1:{port}{}", u.path());

    let mut c = RemoteConfig::new(slow_url.clone());
    c.namespace = ns("slow");
    c.first_byte_timeout = Duration::from_secs(10);
    let r = Remote::build(c.clone()).unwrap();
    let o = obj(noise(3000, 15));
    upload(&r, &o);
    assert!(r.drain().await.is_clean());
    let t = Instant::now();
    assert!(r.get_action(&o.action).await.is_some());
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "proxy did not delay"
    );

    c.first_byte_timeout = Duration::from_millis(100);
    c.breaker_threshold = 2;
    let tight = Remote::build(c).unwrap();
    let t = Instant::now();
    assert_eq!(tight.get_action(&o.action).await, None);
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(tight.get_action(&o.action).await, None);
    assert!(tight.is_disabled());
}

/// An HTTP server on loopback that answers 500 to every request; returns its port and a
/// request counter.
async fn http_500_server() -> (u16, Arc<AtomicU32>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let resp =
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops";
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, hits)
}

/// An HTTP server that answers 500 to everything: retried, then a miss; breaker opens.
#[tokio::test]
async fn real_http_500s() {
    let (port, hits) = http_500_server().await;
    let mut c = RemoteConfig::new(format!("http://127.0.0.1:{port}/cache"));
    c.breaker_threshold = 2;
    let r = Remote::build(c).unwrap();
    assert_eq!(r.get_action(&rand_id()).await, None);
    let after_one = hits.load(Ordering::SeqCst);
    assert!(
        after_one >= 2,
        "500 should be retried, saw {after_one} requests"
    );
    assert_eq!(r.get_action(&rand_id()).await, None);
    assert!(r.is_disabled());
    let n = hits.load(Ordering::SeqCst);
    assert_eq!(r.get_action(&rand_id()).await, None);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        n,
        "no requests once the breaker is open"
    );
}

// ---------------------------------------------------------------------------------------
// GitHub Actions cache: no local stand-in exists; test configuration and failure behaviour.

fn in_github_actions_with_cache() -> bool {
    ["ACTIONS_CACHE_URL", "ACTIONS_RESULTS_URL"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|x| !x.is_empty()))
}

#[tokio::test]
async fn gha_outside_a_workflow_is_a_clear_config_error() {
    if in_github_actions_with_cache() {
        eprintln!(
            "SKIP gha_outside_a_workflow_is_a_clear_config_error: the GHA cache variables are set"
        );
        return;
    }
    let e = Remote::build(RemoteConfig::new("gha://")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let s = e.to_string();
    assert!(s.contains("gha://") && s.contains("github action"), "{s}");
}

#[tokio::test]
async fn gha_service_failures_become_misses_and_open_the_breaker() {
    for failing in ["500", "closed"] {
        let (endpoint, hits) = if failing == "500" {
            let (port, hits) = http_500_server().await;
            (format!("http://127.0.0.1:{port}/"), Some(hits))
        } else {
            (format!("http://127.0.0.1:{}/", closed_port()), None)
        };
        let mut c = RemoteConfig::new("gha://sgcache-test");
        c.extra.insert("endpoint".into(), endpoint);
        c.extra
            .insert("runtime_token".into(), "not-a-real-token".into());
        c.breaker_threshold = 2;
        let r = Remote::build(c).unwrap();
        assert!(r.describe().starts_with("gha://"));
        let t = Instant::now();
        assert_eq!(r.get_action(&rand_id()).await, None, "{failing}");
        let o = obj(noise(100, 18));
        upload(&r, &o);
        let rep = r.drain().await;
        assert_eq!(rep.completed, 0, "{failing}: {rep:?}");
        assert_eq!(r.get_action(&rand_id()).await, None);
        assert!(r.is_disabled(), "{failing}: {:?}", r.counters());
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{failing}: {:?}",
            t.elapsed()
        );
        if let Some(h) = hits {
            assert!(
                h.load(Ordering::SeqCst) > 0,
                "the fake GHA endpoint was never called"
            );
        }
        assert!(matches!(
            fetch(&r, &o.output, 100).await,
            Err(StoreError::BreakerOpen)
        ));
    }
}
