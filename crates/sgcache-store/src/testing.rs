//! A scriptable in-memory [`Store`] for tests (feature `test-support`): it stores values in a
//! map, counts every request by operation and key, and can be told to fail, hang, be slow,
//! or cut downloads short, so tiering and failure paths are tested without a server.
//!
//! ```
//! # use std::time::Duration;
//! # use sgcache_store::ErrorKind;
//! # use sgcache_store::testing::{Behaviour, FakeStore};
//! let fake = FakeStore::new();
//! let remote = fake.remote(|c| c.first_byte_timeout = Duration::from_millis(200));
//! fake.set(Behaviour::Fail(ErrorKind::Temporary));
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use sgcache_types::Metrics;

use crate::backend::Layout;
use crate::cache::RemoteCache;
use crate::config::RemoteConfig;
use crate::error::{ErrorKind, StoreError};
use crate::store::{Body, ByteStream, Capabilities, Store, read_all};

/// How the fake store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behaviour {
    /// Every operation works.
    #[default]
    Healthy,
    /// Every operation fails with this kind.
    Fail(ErrorKind),
    /// The next N operations fail with a temporary error, then it is healthy.
    FailFirst(u32),
    /// Every operation waits this long first.
    Slow(Duration),
    /// Every operation waits forever (a remote that accepts and never answers).
    Hang,
    /// Downloads deliver this many bytes, then fail (a connection cut mid-body).
    CutAfter(usize),
}

/// The scriptable store. Share it as `Arc<FakeStore>`.
#[derive(Debug, Default)]
pub struct FakeStore {
    map: Mutex<HashMap<String, Bytes>>,
    behaviour: Mutex<Behaviour>,
    failing_first: AtomicU64,
    requests: Mutex<HashMap<(&'static str, String), u64>>,
    log: Mutex<Vec<(&'static str, String)>>,
    total: AtomicU64,
    caps: Mutex<Option<Capabilities>>,
}

impl FakeStore {
    /// An empty, healthy store.
    pub fn new() -> Arc<FakeStore> {
        Arc::new(FakeStore::default())
    }

    /// Changes how it answers from now on.
    pub fn set(&self, b: Behaviour) {
        if let Behaviour::FailFirst(n) = b {
            self.failing_first.store(u64::from(n), Ordering::SeqCst);
        }
        *self.behaviour.lock().unwrap_or_else(|p| p.into_inner()) = b;
    }

    /// Overrides the capabilities it reports.
    pub fn set_capabilities(&self, c: Capabilities) {
        *self.caps.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
    }

    /// A [`RemoteCache`] over this store (framed layout), with short time limits; `tweak`
    /// adjusts the configuration.
    pub fn remote(self: &Arc<Self>, tweak: impl FnOnce(&mut RemoteConfig)) -> RemoteCache {
        let mut c = RemoteConfig::new("fake://");
        c.first_byte_timeout = Duration::from_millis(300);
        c.stall_timeout = Duration::from_millis(300);
        c.upload_deadline = Duration::from_secs(5);
        tweak(&mut c);
        RemoteCache::with_store(
            c,
            self.clone(),
            Layout::Framed,
            "fake://".into(),
            Arc::new(Metrics::default()),
        )
        .expect("a valid fake configuration")
    }

    /// The stored value of `key`, as the backend holds it.
    pub fn raw(&self, key: &str) -> Option<Bytes> {
        self.map().get(key).cloned()
    }

    /// Stores `value` at `key` directly (a writer bypassing sgcache).
    pub fn put_raw(&self, key: &str, value: impl Into<Bytes>) {
        self.map().insert(key.to_owned(), value.into());
    }

    /// Removes `key` directly (an expiry).
    pub fn remove(&self, key: &str) -> bool {
        self.map().remove(key).is_some()
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.map().keys().cloned().collect();
        k.sort();
        k
    }

    /// Requests of operation `op` (`get`, `put`, `exists`, `delete`) for keys starting with
    /// `prefix`.
    pub fn requests(&self, op: &str, prefix: &str) -> u64 {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((o, k), _)| *o == op && k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Every request so far, in the order they reached the store.
    pub fn log(&self) -> Vec<(&'static str, String)> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// All requests so far.
    pub fn total_requests(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bytes>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn gate(&self, op: &'static str, key: &str) -> Result<Behaviour, StoreError> {
        self.total.fetch_add(1, Ordering::SeqCst);
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((op, key.to_owned()))
            .or_default() += 1;
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((op, key.to_owned()));
        let b = *self.behaviour.lock().unwrap_or_else(|p| p.into_inner());
        match b {
            Behaviour::Fail(kind) => Err(StoreError::backend(op, key, kind, "scripted failure")),
            Behaviour::FailFirst(_) => {
                let left = self.failing_first.load(Ordering::SeqCst);
                if left > 0 {
                    self.failing_first.fetch_sub(1, Ordering::SeqCst);
                    Err(StoreError::backend(
                        op,
                        key,
                        ErrorKind::Temporary,
                        "scripted blip",
                    ))
                } else {
                    Ok(b)
                }
            }
            Behaviour::Slow(d) => {
                tokio::time::sleep(d).await;
                Ok(b)
            }
            Behaviour::Hang => std::future::pending().await,
            Behaviour::Healthy | Behaviour::CutAfter(_) => Ok(b),
        }
    }
}

/// Delivery chunk: small, to exercise streaming.
const CHUNK: usize = 7919;

impl Store for FakeStore {
    fn capabilities(&self) -> Capabilities {
        self.caps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_default()
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ByteStream>, StoreError>> {
        Box::pin(async move {
            let b = self.gate("get", key).await?;
            let Some(v) = self.raw(key) else {
                return Ok(None);
            };
            let cut = match b {
                Behaviour::CutAfter(n) => Some(n.min(v.len().saturating_sub(1))),
                _ => None,
            };
            let end = cut.unwrap_or(v.len());
            let mut chunks: Vec<Result<Bytes, StoreError>> = (0..end)
                .step_by(CHUNK)
                .map(|i| Ok(v.slice(i..(i + CHUNK).min(end))))
                .collect();
            if cut.is_some() {
                chunks.push(Err(StoreError::backend(
                    "get",
                    key,
                    ErrorKind::Temporary,
                    "scripted cut mid-body",
                )));
            }
            Ok(Some(
                Box::pin(futures_util::stream::iter(chunks)) as ByteStream
            ))
        })
    }
    fn put<'a>(&'a self, key: &'a str, body: Body) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.gate("put", key).await?;
            let v = read_all(body.stream(), key, usize::MAX).await?;
            self.put_raw(key, v);
            Ok(())
        })
    }
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.gate("exists", key).await?;
            Ok(self.map().contains_key(key))
        })
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.gate("delete", key).await?;
            self.remove(key);
            Ok(())
        })
    }
}
