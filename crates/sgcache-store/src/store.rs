//! The `Store` trait: a flat key → bytes map with four operations. Backends implement only
//! this; timeouts, retries, the circuit breaker and metering are wrappers
//! ([`crate::layers`]), and the ac/cas layout, compression and signing live above it in
//! [`crate::Remote`].

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};

use crate::error::StoreError;

/// A stream of body chunks.
pub type ByteStream = BoxStream<'static, Result<Bytes, StoreError>>;

/// What a backend can do cheaply. Callers adapt instead of failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `exists` is a cheap metadata request (S3 HEAD, GCS/Azure metadata, Redis EXISTS).
    /// When false, uploads skip the "already there?" check and just write.
    pub exists: bool,
    /// `delete` works (GitHub Actions cache and bazel-remote cannot delete).
    pub delete: bool,
    /// Zero-length values can be stored (the GitHub Actions cache cannot).
    pub empty_values: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            exists: true,
            delete: true,
            empty_values: true,
        }
    }
}

/// A request body that can be replayed, so a retry can send it again.
#[derive(Clone)]
pub struct Body {
    open: Arc<dyn Fn() -> ByteStream + Send + Sync>,
    len: Option<u64>,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Body {
    /// A body held in memory.
    pub fn from_bytes(bytes: Bytes) -> Body {
        let len = bytes.len() as u64;
        Body {
            open: Arc::new(move || {
                let b = bytes.clone();
                Box::pin(stream::iter(std::iter::once(Ok(b))))
            }),
            len: Some(len),
        }
    }

    /// A body produced by `open` each time it is sent; `len` is its length when known.
    pub fn from_fn(
        len: Option<u64>,
        open: impl Fn() -> ByteStream + Send + Sync + 'static,
    ) -> Body {
        Body {
            open: Arc::new(open),
            len,
        }
    }

    /// Start (or restart) the body.
    pub fn stream(&self) -> ByteStream {
        (self.open)()
    }

    /// The body length, when known in advance.
    pub fn len(&self) -> Option<u64> {
        self.len
    }

    /// Whether the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len == Some(0)
    }
}

/// A flat key/value store. Keys are `/`-separated relative paths; values are opaque bytes.
///
/// A missing key is `Ok(None)` / `Ok(false)`, never an error.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// What this store can do.
    fn capabilities(&self) -> Capabilities;
    /// Open the value at `key` as a stream, or `None` if it does not exist.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ByteStream>, StoreError>>;
    /// Write `body` at `key`, replacing any value. Writing a value that is already there
    /// (an idempotent re-put) succeeds.
    fn put<'a>(&'a self, key: &'a str, body: Body) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Whether `key` exists.
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Remove `key`; removing a missing key succeeds.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Read a whole value into memory, failing when it exceeds `limit` bytes.
pub async fn read_all(mut s: ByteStream, key: &str, limit: usize) -> Result<Vec<u8>, StoreError> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > limit {
            return Err(StoreError::corrupt(
                "value",
                key,
                format!("longer than {limit} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
