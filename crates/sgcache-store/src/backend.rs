//! The one real backend: an Apache OpenDAL [`Operator`] built from a remote URL.
//!
//! Every URL form maps to one OpenDAL service and a config map; query parameters and
//! [`crate::RemoteConfig::extra`] entries are passed through as OpenDAL config keys, so any
//! option the service has (e.g. `enable_virtual_host_style=true` for S3) is reachable
//! without code here. No network I/O happens while building.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use std::time::Duration;

use opendal::Operator;

use crate::error::{ErrorKind, StoreError};
use crate::store::{Body, ByteStream, Capabilities, Store};

/// The accepted URL forms, for error messages.
pub const ACCEPTED_SCHEMES: &str = "s3://bucket/prefix, gs://bucket/prefix, azblob://container/prefix, \
redis://host:port/db, rediss://host:port/db, http(s)://host:port/prefix, gha://[prefix], file:///path";

/// How objects and action entries are laid out on the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// sgcache's own layout: `<ns>/ac/<hex>` per namespace, `cas/<hex>` shared, objects
    /// carry a 4-byte format header and may be zstd-compressed.
    Framed,
    /// Plain HTTP caches (bazel-remote, nginx WebDAV): exactly `ac/<hex>` and `cas/<hex>`,
    /// objects are the raw bytes (the server may check `cas/<hex>` against SHA-256).
    Plain,
}

/// A parsed remote URL.
#[derive(Debug, Clone)]
pub(crate) struct ParsedUrl {
    /// OpenDAL service scheme (`s3`, `gcs`, …).
    pub service: &'static str,
    /// OpenDAL configuration.
    pub config: BTreeMap<String, String>,
    pub layout: Layout,
    pub caps: Capabilities,
    pub masked: String,
}

fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "key",
        "sas",
        "credential",
        "sig",
    ]
    .iter()
    .any(|s| k.contains(s))
        && k != "key_prefix"
}

/// The URL with passwords and secret-looking query values replaced by `***`.
pub fn mask_url(raw: &str) -> String {
    let Ok(mut u) = url::Url::parse(raw) else {
        // Not a URL: show only the scheme-ish head so nothing secret leaks.
        return raw.split(['?', '@']).next().unwrap_or("").to_string();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_key(&k) {
                    "***".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

fn config_err(raw: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Config {
        url: mask_url(raw),
        reason: reason.into(),
    }
}

fn root_of(path: &str) -> String {
    let p = path.trim_matches('/');
    if p.is_empty() {
        "/".to_string()
    } else {
        format!("/{p}/")
    }
}

fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

/// Parse a remote URL into an OpenDAL service and config. `extra` entries override.
pub(crate) fn parse_url(
    raw: &str,
    extra: &BTreeMap<String, String>,
) -> Result<ParsedUrl, StoreError> {
    let u = url::Url::parse(raw).map_err(|e| {
        config_err(
            raw,
            format!("not a URL ({e}); accepted: {ACCEPTED_SCHEMES}"),
        )
    })?;
    let mut cfg = BTreeMap::new();
    let mut query: BTreeMap<String, String> = u
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let host = u.host_str().unwrap_or("").to_string();
    let mut layout = Layout::Framed;
    let mut caps = Capabilities::default();
    let service: &'static str = match u.scheme() {
        "s3" => {
            if host.is_empty() {
                return Err(config_err(raw, "missing bucket: use s3://bucket/prefix"));
            }
            cfg.insert("bucket".into(), host);
            cfg.insert("root".into(), root_of(u.path()));
            if let Some(v) = query.remove("anonymous") {
                cfg.insert("allow_anonymous".into(), truthy(&v).to_string());
            }
            "s3"
        }
        "gs" | "gcs" => {
            if host.is_empty() {
                return Err(config_err(raw, "missing bucket: use gs://bucket/prefix"));
            }
            cfg.insert("bucket".into(), host);
            cfg.insert("root".into(), root_of(u.path()));
            if query.remove("anonymous").is_some_and(|v| truthy(&v)) {
                // An emulator (or a public bucket): no token, no metadata server.
                cfg.insert("allow_anonymous".into(), "true".into());
                cfg.insert("skip_signature".into(), "true".into());
                cfg.insert("disable_vm_metadata".into(), "true".into());
                cfg.insert("disable_config_load".into(), "true".into());
            }
            "gcs"
        }
        "azblob" => {
            if host.is_empty() {
                return Err(config_err(
                    raw,
                    "missing container: use azblob://container/prefix",
                ));
            }
            cfg.insert("container".into(), host);
            cfg.insert("root".into(), root_of(u.path()));
            "azblob"
        }
        "redis" | "rediss" => {
            if host.is_empty() {
                return Err(config_err(raw, "missing host: use redis://host:port/db"));
            }
            let port = u.port().unwrap_or(6379);
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host
            };
            cfg.insert("endpoint".into(), format!("{}://{host}:{port}", u.scheme()));
            let db = u.path().trim_matches('/');
            if !db.is_empty() {
                let n: i64 = db.parse().map_err(|_| {
                    config_err(
                        raw,
                        format!("database `{db}` is not a number: use redis://host:port/0"),
                    )
                })?;
                cfg.insert("db".into(), n.to_string());
            }
            if !u.username().is_empty() {
                cfg.insert("username".into(), u.username().to_string());
            }
            if let Some(p) = u.password() {
                cfg.insert("password".into(), p.to_string());
            }
            if let Some(p) = query.remove("prefix") {
                cfg.insert("root".into(), root_of(&p));
            } else {
                cfg.insert("root".into(), "/sgcache/".into());
            }
            if let Some(c) = query.remove("cluster") {
                let eps: Vec<String> = c
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|hp| format!("{}://{hp}", u.scheme()))
                    .collect();
                cfg.remove("endpoint");
                cfg.insert("cluster_endpoints".into(), eps.join(","));
            }
            "redis"
        }
        "http" | "https" => {
            if host.is_empty() {
                return Err(config_err(raw, "missing host: use http://host:port/prefix"));
            }
            let mut ep = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
            if let Some(p) = u.port() {
                ep.push_str(&format!(":{p}"));
            }
            cfg.insert("endpoint".into(), ep);
            cfg.insert("root".into(), root_of(u.path()));
            // bazel-remote answers neither MKCOL nor PROPFIND; nginx creates parents itself
            // with `create_full_put_path on`.
            cfg.insert("disable_create_dir".into(), "true".into());
            if !u.username().is_empty() {
                cfg.insert("username".into(), u.username().to_string());
            }
            if let Some(p) = u.password() {
                cfg.insert("password".into(), p.to_string());
            }
            layout = Layout::Plain;
            caps = Capabilities {
                exists: false,
                delete: true,
                empty_values: true,
            };
            "webdav"
        }
        "gha" | "ghac" => {
            let prefix = format!("{}{}", host, u.path());
            let prefix = if prefix.trim_matches('/').is_empty() {
                "sgcache"
            } else {
                &prefix
            };
            cfg.insert("root".into(), root_of(prefix));
            caps = Capabilities {
                exists: true,
                delete: false,
                empty_values: false,
            };
            "ghac"
        }
        "file" => {
            if !host.is_empty() && host != "localhost" {
                return Err(config_err(
                    raw,
                    "file URLs take an absolute path: file:///path",
                ));
            }
            let path = u
                .to_file_path()
                .map_err(|_| config_err(raw, "file URLs take an absolute path: file:///path"))?;
            cfg.insert("root".into(), path.to_string_lossy().into_owned());
            // Write to a temp file and rename, so concurrent writers (several CI jobs on
            // one NFS mount) never expose a partial object.
            cfg.insert(
                "atomic_write_dir".into(),
                path.join(".sgcache-tmp").to_string_lossy().into_owned(),
            );
            "fs"
        }
        other => {
            return Err(config_err(
                raw,
                format!("unknown scheme `{other}`; accepted: {ACCEPTED_SCHEMES}"),
            ));
        }
    };
    cfg.extend(query);
    cfg.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(ParsedUrl {
        service,
        config: cfg,
        layout,
        caps,
        masked: mask_url(raw),
    })
}

fn feature_missing(raw: &str, feature: &str) -> StoreError {
    config_err(
        raw,
        format!("this sgcache was built without the `{feature}` feature, which this URL needs"),
    )
}

/// The HTTP transport of HTTP-based services: reqwest with a connect (TCP + TLS) time
/// limit of its own, so a dead endpoint fails in `connect` instead of using up the whole
/// first-byte budget. One client per remote, so its connection pool is shared by all
/// operations.
#[cfg(feature = "http-transport")]
fn http_transport(connect: Duration) -> Option<opendal::HttpTransporter> {
    let client = reqwest::Client::builder()
        .connect_timeout(connect)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .ok()?;
    Some(opendal::HttpTransporter::new(
        opendal_http_transport_reqwest::ReqwestTransport::new(client),
    ))
}

fn build_operator(raw: &str, p: &ParsedUrl, connect: Duration) -> Result<Operator, StoreError> {
    opendal::install_default();
    let built: Option<opendal::Result<Operator>> = match p.service {
        #[cfg(feature = "s3")]
        "s3" => Some(Operator::from_iter::<opendal::services::S3>(
            p.config.clone(),
        )),
        #[cfg(feature = "gcs")]
        "gcs" => Some(Operator::from_iter::<opendal::services::Gcs>(
            p.config.clone(),
        )),
        #[cfg(feature = "azblob")]
        "azblob" => Some(Operator::from_iter::<opendal::services::Azblob>(
            p.config.clone(),
        )),
        #[cfg(feature = "redis")]
        "redis" => Some(Operator::from_iter::<opendal::services::Redis>(
            p.config.clone(),
        )),
        #[cfg(feature = "webdav")]
        "webdav" => Some(Operator::from_iter::<opendal::services::Webdav>(
            p.config.clone(),
        )),
        #[cfg(feature = "ghac")]
        "ghac" => Some(Operator::from_iter::<opendal::services::Ghac>(
            p.config.clone(),
        )),
        #[cfg(feature = "fs")]
        "fs" => Some(Operator::from_iter::<opendal::services::Fs>(
            p.config.clone(),
        )),
        _ => None,
    };
    #[cfg(feature = "http-transport")]
    let built = built.map(|r| {
        r.map(|op| match http_transport(connect) {
            Some(t) if !matches!(p.service, "fs" | "redis") => {
                let ctx = op.context().clone().with_http_transport(t);
                op.with_context(ctx)
            }
            _ => op,
        })
    });
    #[cfg(not(feature = "http-transport"))]
    let _ = connect;
    match built {
        Some(op) => op.map_err(|e| config_err(raw, one_line(&e))),
        // Service names equal feature names.
        None => Err(feature_missing(raw, p.service)),
    }
}

fn one_line(e: &opendal::Error) -> String {
    // OpenDAL's Display carries context (service, path) on one line; drop any newlines.
    e.to_string().replace(['\n', '\r'], " ")
}

/// Classify an OpenDAL error for retry and breaker policy.
pub(crate) fn classify(e: &opendal::Error) -> ErrorKind {
    use opendal::ErrorKind as K;
    match e.kind() {
        K::PermissionDenied => ErrorKind::Auth,
        K::ConfigInvalid => ErrorKind::Config,
        K::RateLimited => ErrorKind::Temporary,
        _ if e.is_temporary() => ErrorKind::Temporary,
        K::Unexpected => {
            // OpenDAL marks 5xx, throttling and transport failures temporary; what is left
            // is a 4xx it has no better kind for. Credential failures among those open the
            // breaker at once.
            let s = e.to_string();
            if s.contains("403")
                || s.contains("401")
                || s.contains("InvalidAccessKeyId")
                || s.contains("SignatureDoesNotMatch")
                || s.contains("AuthenticationFailed")
                || s.contains("AuthorizationFailure")
                || s.contains("NOAUTH")
                || s.contains("WRONGPASS")
            {
                ErrorKind::Auth
            } else {
                ErrorKind::Permanent
            }
        }
        _ => ErrorKind::Permanent,
    }
}

fn map_err(op: &'static str, key: &str, e: opendal::Error) -> StoreError {
    if cannot_connect(&e) {
        return StoreError::Unreachable {
            op,
            key: key.to_owned(),
            message: one_line(&e),
        };
    }
    StoreError::backend(op, key, classify(&e), one_line(&e))
}

/// Whether an error's cause is a connection that could not be made (refused, timed out,
/// unreachable): the remote is down, not merely failing.
fn cannot_connect(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        #[cfg(feature = "http-transport")]
        if let Some(r) = err.downcast_ref::<reqwest::Error>()
            && r.is_connect()
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// A [`Store`] over an OpenDAL operator.
#[derive(Debug)]
pub struct OpendalStore {
    op: std::sync::OnceLock<Operator>,
    /// For `file://`, building the operator creates directories; that is deferred to first
    /// use so a missing mount cannot fail construction (it fails the first operation, which
    /// the breaker handles like any remote outage).
    deferred: Option<(String, ParsedUrl)>,
    caps: Capabilities,
    chunk: usize,
    /// `host:port` to TCP-connect before an operation while the backend is not known to be
    /// up. The Redis client retries refused connections for many seconds inside one
    /// operation; this turns "nobody listens" into a fast temporary error.
    preflight: Option<String>,
    /// The connect time limit (HTTP transports and the Redis preflight).
    connect: Duration,
    up: std::sync::atomic::AtomicBool,
}

/// Upload chunk size for multipart-capable services: objects larger than this are sent
/// as a multipart upload, smaller ones in one request.
const WRITE_CHUNK: usize = 8 << 20;
/// GCS: single-request uploads up to 128 MiB. OpenDAL's GCS multipart path uses the XML
/// API (`?uploads`), which fake-gcs-server does not implement, so the larger chunk keeps
/// CI's 64 MiB case on the JSON upload path both real GCS and the emulator support.
const GCS_WRITE_CHUNK: usize = 128 << 20;
/// A directory needs no multipart: OpenDAL's fs writer appends each chunk to the temp file,
/// so a small chunk only bounds the memory an upload holds.
const FS_WRITE_CHUNK: usize = 1 << 20;

impl OpendalStore {
    /// Wrap an operator (for callers that build their own).
    pub fn new(op: Operator, caps: Capabilities) -> OpendalStore {
        OpendalStore {
            op: std::sync::OnceLock::from(op),
            deferred: None,
            caps,
            chunk: WRITE_CHUNK,
            preflight: None,
            connect: crate::defaults::CONNECT_TIMEOUT,
            up: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn from_parsed(
        raw: &str,
        p: &ParsedUrl,
        connect: Duration,
    ) -> Result<OpendalStore, StoreError> {
        if p.service == "fs" {
            #[cfg(not(feature = "fs"))]
            return Err(feature_missing(raw, "fs"));
            #[cfg(feature = "fs")]
            return Ok(OpendalStore {
                op: std::sync::OnceLock::new(),
                deferred: Some((raw.to_string(), p.clone())),
                caps: p.caps,
                chunk: FS_WRITE_CHUNK,
                preflight: None,
                connect,
                up: std::sync::atomic::AtomicBool::new(false),
            });
        }
        let mut s = OpendalStore::new(build_operator(raw, p, connect)?, p.caps);
        s.connect = connect;
        if p.service == "gcs" {
            s.chunk = GCS_WRITE_CHUNK;
        }
        if p.service == "redis" {
            s.preflight = p
                .config
                .get("endpoint")
                .and_then(|e| e.split_once("://"))
                .map(|(_, hp)| hp.to_string());
        }
        Ok(s)
    }

    async fn check_up(&self, op: &'static str, key: &str) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let Some(addr) = &self.preflight else {
            return Ok(());
        };
        if self.up.load(Ordering::Relaxed) {
            return Ok(());
        }
        match tokio::time::timeout(self.connect, tokio::net::TcpStream::connect(addr.as_str()))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Unreachable {
                op,
                key: key.to_owned(),
                message: format!("connect to {addr}: {e}"),
            }),
            Err(_) => Err(StoreError::Unreachable {
                op,
                key: key.to_owned(),
                message: format!("connect to {addr}: timed out"),
            }),
        }
    }

    fn note<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        self.up
            .store(r.is_ok(), std::sync::atomic::Ordering::Relaxed);
        r
    }

    fn op(&self, op: &'static str, key: &str) -> Result<&Operator, StoreError> {
        if let Some(o) = self.op.get() {
            return Ok(o);
        }
        let (raw, p) = self
            .deferred
            .as_ref()
            .expect("operator is built or deferred");
        let built = build_operator(raw, p, self.connect)
            .map_err(|e| StoreError::backend(op, key, ErrorKind::Permanent, e))?;
        Ok(self.op.get_or_init(|| built))
    }
}

impl Store for OpendalStore {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ByteStream>, StoreError>> {
        Box::pin(async move {
            self.check_up("get", key).await?;
            let r = self.get_inner(key).await;
            self.note(r)
        })
    }

    fn put<'a>(&'a self, key: &'a str, body: Body) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.check_up("put", key).await?;
            let r = self.put_inner(key, body).await;
            self.note(r)
        })
    }

    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.check_up("exists", key).await?;
            let r = match self.op("exists", key)?.stat(key).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(map_err("exists", key, e)),
            };
            self.note(r)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.check_up("delete", key).await?;
            let r = match self.op("delete", key)?.delete(key).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(map_err("delete", key, e)),
            };
            self.note(r)
        })
    }
}

impl OpendalStore {
    async fn get_inner(&self, key: &str) -> Result<Option<ByteStream>, StoreError> {
        let r = match self.op("get", key)?.reader(key).await {
            Ok(r) => r,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(map_err("get", key, e)),
        };
        let mut s = match r.into_bytes_stream(..).await {
            Ok(s) => s,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(map_err("get", key, e)),
        };
        // Many services report a missing key only on the first read.
        let first = match s.next().await {
            None => None,
            Some(Ok(b)) => Some(b),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Some(Err(e)) => return Err(io_err("get", key, e)),
        };
        let k = key.to_string();
        let rest = s.map_err(move |e| io_err("get", &k, e));
        let head = futures_util::stream::iter(first.map(Ok));
        Ok(Some(Box::pin(head.chain(rest)) as ByteStream))
    }

    async fn put_inner(&self, key: &str, body: Body) -> Result<(), StoreError> {
        let op = self.op("put", key)?;
        if !op.info().capability().write_can_multi {
            // One-shot services (WebDAV/plain HTTP): one PUT with the whole body. The parts
            // are kept as a list, not copied into one buffer.
            let mut parts = Vec::new();
            let mut s = body.stream();
            while let Some(chunk) = s.next().await {
                parts.push(chunk?);
            }
            return match op.write(key, opendal::Buffer::from(parts)).await {
                Ok(_) => Ok(()),
                Err(e) if already_there(&e) => Ok(()),
                Err(e) => Err(map_err("put", key, e)),
            };
        }
        let mut w = op
            .writer_with(key)
            .chunk(self.chunk)
            .await
            .map_err(|e| map_err("put", key, e))?;
        let mut s = body.stream();
        while let Some(chunk) = s.next().await {
            let chunk: Bytes = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(e);
                }
            };
            if let Err(e) = w.write(chunk).await {
                let _ = w.abort().await;
                return Err(map_err("put", key, e));
            }
        }
        match w.close().await {
            Ok(_) => Ok(()),
            Err(e) if already_there(&e) => Ok(()),
            Err(e) => Err(map_err("put", key, e)),
        }
    }
}

/// Immutable stores (the GitHub Actions cache) refuse a second write of a key; values are
/// content-derived (objects) or equivalent (entries), so the first write stands.
fn already_there(e: &opendal::Error) -> bool {
    matches!(
        e.kind(),
        opendal::ErrorKind::AlreadyExists | opendal::ErrorKind::ConditionNotMatch
    )
}

fn io_err(op: &'static str, key: &str, e: std::io::Error) -> StoreError {
    // OpenDAL's byte stream wraps its own error in io::Error; recover it when possible.
    let kind = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<opendal::Error>())
    {
        Some(oe) => classify(oe),
        None => ErrorKind::Temporary,
    };
    StoreError::backend(op, key, kind, e)
}

/// Open the bare backend for `url` (no timeout/retry/breaker layers), with the key layout
/// the URL implies. For tests and tools that inspect or repair the remote directly.
pub fn open_store(
    url: &str,
    extra: &BTreeMap<String, String>,
) -> Result<(std::sync::Arc<dyn Store>, Layout), StoreError> {
    let p = parse_url(url, extra)?;
    let s = OpendalStore::from_parsed(url, &p, crate::defaults::CONNECT_TIMEOUT)?;
    Ok((std::sync::Arc::new(s), p.layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(u: &str) -> ParsedUrl {
        parse_url(u, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn s3_url() {
        let p = parse("s3://bkt/some/prefix?region=eu-west-1&endpoint=http://127.0.0.1:9000");
        assert_eq!(p.service, "s3");
        assert_eq!(p.config["bucket"], "bkt");
        assert_eq!(p.config["root"], "/some/prefix/");
        assert_eq!(p.config["region"], "eu-west-1");
        assert_eq!(p.config["endpoint"], "http://127.0.0.1:9000");
        assert_eq!(p.layout, Layout::Framed);
    }

    #[test]
    fn redis_url() {
        let p = parse("redis://:pw@127.0.0.1:6390/3");
        assert_eq!(p.config["endpoint"], "redis://127.0.0.1:6390");
        assert_eq!(p.config["db"], "3");
        assert_eq!(p.config["password"], "pw");
        assert_eq!(p.masked, "redis://:***@127.0.0.1:6390/3");
        assert!(parse_url("redis://h/x", &BTreeMap::new()).is_err());
    }

    #[test]
    fn http_url_is_plain() {
        let p = parse("http://127.0.0.1:8080/cache");
        assert_eq!(p.service, "webdav");
        assert_eq!(p.config["endpoint"], "http://127.0.0.1:8080");
        assert_eq!(p.config["root"], "/cache/");
        assert_eq!(p.layout, Layout::Plain);
    }

    #[test]
    fn file_and_gha() {
        assert_eq!(parse("file:///tmp/x").config["root"], "/tmp/x");
        assert_eq!(parse("gha://").config["root"], "/sgcache/");
        assert!(!parse("gha://").caps.empty_values);
    }

    #[test]
    fn unknown_scheme_names_url_and_accepted_forms() {
        let e = parse_url("ftp://x/y?secret_access_key=abc", &BTreeMap::new()).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("ftp://x/y"), "{s}");
        assert!(!s.contains("abc"), "{s}");
        assert!(s.contains("s3://bucket/prefix"), "{s}");
    }

    #[test]
    fn extra_overrides_and_secrets_are_masked() {
        let mut extra = BTreeMap::new();
        extra.insert("region".to_string(), "auto".to_string());
        let p = parse_url("s3://b/?region=x&secret_access_key=s3cr3t", &extra).unwrap();
        assert_eq!(p.config["region"], "auto");
        assert!(!p.masked.contains("s3cr3t"));
    }
}
