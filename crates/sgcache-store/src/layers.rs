//! Wrappers around a [`Store`]: time limits, retries of temporary errors, metering, and the
//! circuit breaker. Each is a `Store` itself, so they stack in any order; [`crate::RemoteCache`]
//! uses `Breaker(Metered(Timeout(Retry(backend))))`: one overall deadline per operation
//! covers all its attempts, and the breaker sees each operation's final outcome once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sgcache_types::Metrics;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};

use crate::error::{ErrorKind, StoreError};
use crate::store::{Body, ByteStream, Capabilities, Store};

/// Per-operation time limits: `op` for an operation to answer (a download: its first
/// chunk), `stall` for each later chunk of a download.
#[derive(Debug)]
pub struct Timeout<S> {
    inner: S,
    op: Duration,
    stall: Duration,
    /// Extra time granted per byte of a large body, expressed as the slowest throughput
    /// we tolerate (bytes per second). Keeps a 64 MB upload from being cut at `op`.
    min_throughput: u64,
}

impl<S: Store> Timeout<S> {
    /// `op` bounds every operation, `stall` every later gap between chunks of a download.
    pub fn new(inner: S, op: Duration, stall: Duration) -> Timeout<S> {
        Timeout {
            inner,
            op,
            stall,
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
            Ok(s.map(|s| idle_limited(s, self.stall, key.to_string())))
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

/// A [`Store`] that counts traffic and failed operations into the process's [`Metrics`]
/// (`remote_bytes_down`, `remote_bytes_up`, `remote_errors`).
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S: Store> Metered<S> {
    /// Wrap `inner`, counting into `metrics`.
    pub fn new(inner: S, metrics: Arc<Metrics>) -> Metered<S> {
        Metered { inner, metrics }
    }

    fn note<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &r
            && e.kind() != ErrorKind::BreakerOpen
        {
            self.metrics.remote_errors.inc();
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
            let m = self.metrics.clone();
            // A download that fails after it started (a reset mid-body) counts as an
            // error too, not only one that fails to open.
            Ok(s.map(|s| {
                Box::pin(s.inspect(move |r| match r {
                    Ok(b) => m.remote_bytes_down.add(b.len() as u64),
                    Err(_) => m.remote_errors.inc(),
                })) as ByteStream
            }))
        })
    }
    fn put<'a>(&'a self, key: &'a str, body: Body) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let m = self.metrics.clone();
            let counted = Body::from_fn(body.len(), move || {
                let m = m.clone();
                Box::pin(
                    body.stream()
                        .inspect_ok(move |b| m.remote_bytes_up.add(b.len() as u64)),
                ) as ByteStream
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

/// What the breaker lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerPosition {
    /// Operations go to the remote.
    Closed,
    /// The remote is off until the cool-down ends; operations fail at once.
    Open,
    /// The cool-down has ended: one operation (the probe) goes through; its outcome closes
    /// the breaker or opens it again for twice as long.
    HalfOpen,
}

#[derive(Debug)]
struct BreakerInner {
    position: BreakerPosition,
    /// Consecutive failures while closed.
    consecutive: u32,
    /// When the open breaker half-opens.
    until: Instant,
    /// The current cool-down (doubles on each failed probe, up to the maximum).
    cooldown: Duration,
    /// Whether the half-open probe is out.
    probing: bool,
    /// When it went out (a probe whose stream was dropped unread never reports; after a
    /// cool-down another may go).
    probe_since: Instant,
    /// Whether any operation of this process has succeeded: a remote that has never answered
    /// and then times out or refuses a connection is down, no need to wait for more failures.
    ever_answered: bool,
}

/// A change of the breaker's state, for whoever shares the knowledge (the tiering crate
/// records it in the local tier, so other processes skip a remote that is down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakerEvent {
    /// The remote was switched off for `cooldown` (one line: why).
    Opened {
        /// How long until the next probe.
        cooldown: Duration,
        /// The failure that decided it.
        reason: String,
    },
    /// A probe succeeded: the remote is on again.
    Closed,
}

type Observer = Box<dyn Fn(&BreakerEvent) + Send + Sync>;

/// The circuit breaker's state, shared by every operation of one remote and readable from
/// outside the store stack.
///
/// Closed → open after `threshold` consecutive failed operations, at once on a credential
/// failure, and at once when the remote fails before it has answered this process once
/// (refused, no answer in time, 5xx after retries: it is down, not flaky); open → half-open
/// after the cool-down (initially `cooldown`, doubling after each failed probe up to
/// `max_cooldown`); half-open → closed when the probe succeeds. Each opening counts in
/// `breaker_trips`; the first says so in one warning line. An observer hears every change
/// ([`BreakerState::observe`]), and [`BreakerState::restore`] starts from what another
/// process knew.
pub struct BreakerState {
    threshold: u32,
    first_cooldown: Duration,
    max_cooldown: Duration,
    label: String,
    metrics: Arc<Metrics>,
    inner: Mutex<BreakerInner>,
    observer: Mutex<Option<Observer>>,
}

impl std::fmt::Debug for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerState")
            .field("label", &self.label)
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

impl BreakerState {
    /// A closed breaker that opens after `threshold` consecutive failures (0 = never) for
    /// `cooldown` at first, at most `max_cooldown`.
    pub fn new(
        threshold: u32,
        cooldown: Duration,
        max_cooldown: Duration,
        label: impl Into<String>,
        metrics: Arc<Metrics>,
    ) -> BreakerState {
        BreakerState {
            threshold,
            first_cooldown: cooldown,
            max_cooldown: max_cooldown.max(cooldown),
            label: label.into(),
            metrics,
            inner: Mutex::new(BreakerInner {
                position: BreakerPosition::Closed,
                consecutive: 0,
                until: Instant::now(),
                cooldown,
                probing: false,
                probe_since: Instant::now(),
                ever_answered: false,
            }),
            observer: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls `f` on every change from now on.
    pub fn observe(&self, f: impl Fn(&BreakerEvent) + Send + Sync + 'static) {
        *self.observer.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
    }

    fn tell(&self, e: BreakerEvent) {
        if let Some(f) = self
            .observer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            f(&e);
        }
    }

    /// Starts from what another process recorded: the remote is off for `left` more (if
    /// any; otherwise the next operation is a probe), and a failed probe doubles `cooldown`.
    pub fn restore(&self, left: Option<Duration>, cooldown: Duration) {
        let mut g = self.lock();
        g.cooldown = cooldown.clamp(self.first_cooldown, self.max_cooldown);
        g.probing = false;
        match left {
            Some(d) if !d.is_zero() => {
                g.position = BreakerPosition::Open;
                g.until = Instant::now() + d;
            }
            _ => g.position = BreakerPosition::HalfOpen,
        }
    }

    /// Where the breaker stands now (an open breaker whose cool-down is over is half-open).
    pub fn position(&self) -> BreakerPosition {
        let g = self.lock();
        match g.position {
            BreakerPosition::Open if Instant::now() >= g.until => BreakerPosition::HalfOpen,
            p => p,
        }
    }

    /// Whether the remote is switched off right now (open, cool-down not over).
    pub fn is_open(&self) -> bool {
        self.position() == BreakerPosition::Open
    }

    /// Asks to run one operation: `true` if it may go to the remote (closed, or the one
    /// half-open probe). A refusal is counted in `remote_skipped_down`.
    pub fn allow(&self) -> bool {
        let ok = {
            let mut g = self.lock();
            match g.position {
                BreakerPosition::Closed => true,
                BreakerPosition::Open if Instant::now() < g.until => false,
                BreakerPosition::Open | BreakerPosition::HalfOpen => {
                    g.position = BreakerPosition::HalfOpen;
                    if g.probing && g.probe_since.elapsed() < self.first_cooldown {
                        false
                    } else {
                        g.probing = true;
                        g.probe_since = Instant::now();
                        true
                    }
                }
            }
        };
        if !ok {
            self.metrics.remote_skipped_down.inc();
        }
        ok
    }

    /// Records the outcome of one operation that [`BreakerState::allow`] let through.
    pub fn record(&self, r: Result<(), &StoreError>) {
        let mut g = self.lock();
        match r {
            Ok(()) => {
                g.ever_answered = true;
                g.consecutive = 0;
                g.probing = false;
                g.cooldown = self.first_cooldown;
                if g.position != BreakerPosition::Closed {
                    g.position = BreakerPosition::Closed;
                    drop(g);
                    tracing::info!("sgcache: remote {} answers again; using it", self.label);
                    self.tell(BreakerEvent::Closed);
                }
            }
            Err(e) if e.is_remote_failure() => {
                g.consecutive = g.consecutive.saturating_add(1);
                let auth = e.kind() == ErrorKind::Auth;
                // A remote that has not answered this process once and then fails (no
                // answer, refused, 5xx after retries) is down, not flaky.
                let unreachable = !g.ever_answered;
                let trip = match g.position {
                    BreakerPosition::Closed => {
                        auth || unreachable
                            || (self.threshold > 0 && g.consecutive >= self.threshold)
                    }
                    // A failed probe opens it again, for longer.
                    BreakerPosition::HalfOpen | BreakerPosition::Open => g.probing,
                };
                if !trip {
                    return;
                }
                let reopen = g.position != BreakerPosition::Closed;
                let cooldown = if reopen {
                    (g.cooldown * 2).min(self.max_cooldown)
                } else {
                    g.cooldown.max(self.first_cooldown)
                };
                g.cooldown = cooldown;
                g.position = BreakerPosition::Open;
                g.until = Instant::now() + cooldown;
                g.probing = false;
                let n = g.consecutive;
                drop(g);
                self.metrics.breaker_trips.inc();
                let why = if auth {
                    "the remote rejected our credentials".to_string()
                } else if unreachable {
                    "it did not answer".to_string()
                } else if reopen {
                    "a failed probe".to_string()
                } else {
                    format!("{n} consecutive failures")
                };
                if reopen {
                    tracing::debug!(
                        "remote {} still failing ({e}); off for {cooldown:?}",
                        self.label
                    );
                } else {
                    tracing::warn!(
                        "sgcache: remote {} switched off for {} after {why} (last: {e}); \
                         continuing with the local cache only",
                        self.label,
                        humantime::format_duration(cooldown)
                    );
                }
                self.tell(BreakerEvent::Opened {
                    cooldown,
                    reason: format!("{why}: {e}"),
                });
            }
            Err(_) => {}
        }
    }
}

/// The circuit breaker: while open, every operation fails at once with
/// [`StoreError::BreakerOpen`] and no I/O. A download counts as a success only once its
/// stream has ended cleanly, so a remote that opens every download and then cuts it trips
/// the breaker like one that refuses.
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
        if !self.state.allow() {
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
            if !self.state.allow() {
                return Err(StoreError::BreakerOpen);
            }
            let s = match self.inner.get(key).await {
                Ok(s) => s,
                Err(e) => {
                    self.state.record(Err(&e));
                    return Err(e);
                }
            };
            let Some(s) = s else {
                self.state.record(Ok(()));
                return Ok(None);
            };
            // The outcome is the stream's: recorded at its end or first error.
            let st = self.state.clone();
            let mut done = false;
            let s = s.map(move |r| {
                if !done && let Err(e) = &r {
                    done = true;
                    st.record(Err(e));
                }

                r
            });
            let st = self.state.clone();
            let end = futures_util::stream::once(async move {
                st.record(Ok(()));
                None
            });
            let s = s.map(Some).chain(end).filter_map(|x| async move { x });
            Ok(Some(Box::pin(s) as ByteStream))
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
