//! Wrappers around a [`Store`]: time limits, retries of temporary errors, metering, and the
//! circuit breaker. Each is a `Store` itself, so they stack in any order; [`crate::Remote`]
//! uses `Breaker(Metered(Timeout(Retry(backend))))`: one overall deadline per operation
//! covers all its attempts, and the breaker sees each operation's final outcome once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};

use crate::error::{ErrorKind, StoreError};
use crate::store::{Body, ByteStream, Capabilities, Store};

/// Per-operation time limits.
#[derive(Debug)]
pub struct Timeout<S> {
    inner: S,
    op: Duration,
    /// Extra time granted per byte of a large body, expressed as the slowest throughput
    /// we tolerate (bytes per second). Keeps a 64 MB upload from being cut at `op`.
    min_throughput: u64,
}

impl<S: Store> Timeout<S> {
    /// `op` bounds every operation (and every gap between chunks of a download).
    pub fn new(inner: S, op: Duration) -> Timeout<S> {
        Timeout {
            inner,
            op,
            min_throughput: 1 << 20,
        }
    }

    fn budget(&self, len: Option<u64>) -> Duration {
        let extra = len.unwrap_or(0) / self.min_throughput.max(1);
        self.op + Duration::from_secs(extra)
    }
}

async fn bounded<T>(
    d: Duration,
    op: &'static str,
    key: &str,
    f: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(d, f).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Timeout {
            op,
            key: key.to_string(),
            after: d,
        }),
    }
}

impl<S: Store> Store for Timeout<S> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ByteStream>, StoreError>> {
        Box::pin(async move {
            let s = bounded(self.op, "get", key, self.inner.get(key)).await?;
            Ok(s.map(|s| idle_limited(s, self.op, key.to_string())))
        })
    }
    fn put<'a>(&'a self, key: &'a str, body: Body) -> BoxFuture<'a, Result<(), StoreError>> {
        let d = self.budget(body.len());
        Box::pin(bounded(d, "put", key, self.inner.put(key, body)))
    }
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(bounded(self.op, "exists", key, self.inner.exists(key)))
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(bounded(self.op, "delete", key, self.inner.delete(key)))
    }
}

/// Fail a download whose next chunk takes longer than `idle`.
fn idle_limited(s: ByteStream, idle: Duration, key: String) -> ByteStream {
    Box::pin(futures_util::stream::unfold(Some(s), move |st| {
        let key = key.clone();
        async move {
            let mut s = st?;
            match tokio::time::timeout(idle, s.next()).await {
                Ok(Some(item)) => Some((item, Some(s))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(StoreError::Timeout {
                        op: "get",
                        key,
                        after: idle,
                    }),
                    None,
                )),
            }
        }
    }))
}

/// Retry policy: temporary errors only, short exponential backoff.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    pub attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(50),
        }
    }
}

/// Retries operations that failed with a temporary error. Download streams are not
/// retried mid-way (the caller's sink already holds bytes).
#[derive(Debug)]
pub struct Retry<S> {
    inner: S,
    policy: RetryPolicy,
}

impl<S: Store> Retry<S> {
    /// Wrap `inner`.
    pub fn new(inner: S, policy: RetryPolicy) -> Retry<S> {
        Retry { inner, policy }
    }

    async fn run<'a, T>(
        &'a self,
        mut f: impl FnMut() -> BoxFuture<'a, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let mut delay = self.policy.base_delay;
        let mut attempt = 1;
        loop {
            match f().await {
                Err(e) if e.is_temporary() && attempt < self.policy.attempts => {
                    tracing::debug!(error = %e, attempt, "remote: retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                r => return r,
            }
        }
    }
}

impl<S: Store> Store for Retry<S> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ByteStream>, StoreError>> {
        Box::pin(self.run(move || self.inner.get(key)))
    }
    fn put<'a>(&'a self, key: &'a str, body: Body) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.run(move || self.inner.put(key, body.clone())))
    }
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.run(move || self.inner.exists(key)))
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.run(move || self.inner.delete(key)))
    }
}

/// Counts bytes moved and operations that failed.
#[derive(Debug, Default)]
pub struct Meter {
    /// Bytes read from the remote (as stored, i.e. compressed).
    pub bytes_down: AtomicU64,
    /// Bytes written to the remote (as stored).
    pub bytes_up: AtomicU64,
    /// Operations that ended in an error (after retries).
    pub errors: AtomicU64,
}

/// A [`Store`] that records traffic into a shared [`Meter`].
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    meter: Arc<Meter>,
}

impl<S: Store> Metered<S> {
    /// Wrap `inner`, counting into `meter`.
    pub fn new(inner: S, meter: Arc<Meter>) -> Metered<S> {
        Metered { inner, meter }
    }

    fn note<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &r
            && e.kind() != ErrorKind::BreakerOpen
        {
            self.meter.errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

impl<S: Store> Store for Metered<S> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ByteStream>, StoreError>> {
        Box::pin(async move {
            let s = self.note(self.inner.get(key).await)?;
            let m = self.meter.clone();
            // A download that fails after it started (a reset mid-body) counts as an
            // error too, not only one that fails to open.
            Ok(s.map(|s| {
                Box::pin(s.inspect(move |r| match r {
                    Ok(b) => {
                        m.bytes_down.fetch_add(b.len() as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        m.errors.fetch_add(1, Ordering::Relaxed);
                    }
                })) as ByteStream
            }))
        })
    }
    fn put<'a>(&'a self, key: &'a str, body: Body) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let m = self.meter.clone();
            let counted = Body::from_fn(body.len(), move || {
                let m = m.clone();
                Box::pin(body.stream().inspect_ok(move |b| {
                    m.bytes_up.fetch_add(b.len() as u64, Ordering::Relaxed);
                })) as ByteStream
            });
            self.note(self.inner.put(key, counted).await)
        })
    }
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { self.note(self.inner.exists(key).await) })
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.note(self.inner.delete(key).await) })
    }
}

/// Shared breaker state, readable from outside the store stack.
#[derive(Debug)]
pub struct BreakerState {
    threshold: u32,
    consecutive: AtomicU32,
    open: AtomicBool,
    label: String,
}

impl BreakerState {
    /// A closed breaker that opens after `threshold` consecutive failures (0 = never).
    pub fn new(threshold: u32, label: impl Into<String>) -> BreakerState {
        BreakerState {
            threshold,
            consecutive: AtomicU32::new(0),
            open: AtomicBool::new(false),
            label: label.into(),
        }
    }

    /// Whether the remote has been switched off.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Record the outcome of one operation.
    pub fn record(&self, r: Result<(), &StoreError>) {
        match r {
            Ok(()) => self.consecutive.store(0, Ordering::Relaxed),
            Err(e) if e.is_remote_failure() => {
                let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
                // Wrong credentials will not fix themselves: open at once.
                let trip =
                    e.kind() == ErrorKind::Auth || (self.threshold > 0 && n >= self.threshold);
                if trip && !self.open.swap(true, Ordering::Relaxed) {
                    let why = if e.kind() == ErrorKind::Auth {
                        "the remote rejected our credentials".to_string()
                    } else {
                        format!("{n} consecutive failures")
                    };
                    tracing::warn!(
                        "sgcache: remote {} switched off for the rest of this run after {why} \
                         (last: {e}); continuing with the local cache only",
                        self.label
                    );
                }
            }
            Err(_) => {}
        }
    }
}

/// The circuit breaker: once open, every operation fails at once with
/// [`StoreError::BreakerOpen`] and no I/O.
#[derive(Debug)]
pub struct Breaker<S> {
    inner: S,
    state: Arc<BreakerState>,
}

impl<S: Store> Breaker<S> {
    /// Wrap `inner`, sharing `state`.
    pub fn new(inner: S, state: Arc<BreakerState>) -> Breaker<S> {
        Breaker { inner, state }
    }

    async fn guard<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.state.is_open() {
            return Err(StoreError::BreakerOpen);
        }
        let r = f.await;
        self.state.record(r.as_ref().map(|_| ()));
        r
    }
}

impl<S: Store> Store for Breaker<S> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ByteStream>, StoreError>> {
        Box::pin(async move {
            let s = self.guard(self.inner.get(key)).await?;
            let st = self.state.clone();
            // A failure mid-download also counts.
            Ok(s.map(|s| Box::pin(s.inspect_err(move |e| st.record(Err(e)))) as ByteStream))
        })
    }
    fn put<'a>(&'a self, key: &'a str, body: Body) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.guard(self.inner.put(key, body)))
    }
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.guard(self.inner.exists(key)))
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.guard(self.inner.delete(key)))
    }
}

impl Store for Arc<dyn Store> {
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ByteStream>, StoreError>> {
        (**self).get(key)
    }
    fn put<'a>(&'a self, key: &'a str, body: Body) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).put(key, body)
    }
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        (**self).exists(key)
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).delete(key)
    }
}
