//! Single-flight: concurrent calls with the same key share one execution.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

/// Runs at most one future per key at a time; later callers for the same key wait for the
/// first one's result. The shared future keeps running if its first caller goes away.
pub struct SingleFlight<K, V: Clone> {
    inflight: Mutex<HashMap<K, Shared<BoxFuture<'static, V>>>>,
}

impl<K, V: Clone> fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleFlight").finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V: Clone + Send + Sync + 'static> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone + Send + Sync + 'static> SingleFlight<K, V> {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run `f` for `key`, or join the run already in flight for it.
    pub async fn run<F>(&self, key: K, f: F) -> V
    where
        F: Future<Output = V> + Send + 'static,
    {
        let fut = {
            let mut m = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match m.get(&key) {
                Some(s) => s.clone(),
                None => {
                    let s = f.boxed().shared();
                    m.insert(key.clone(), s.clone());
                    s
                }
            }
        };
        let v = fut.clone().await;
        let mut m = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if m.get(&key).is_some_and(|s| s.ptr_eq(&fut)) {
            m.remove(&key);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn concurrent_calls_share_one_run() {
        let sf = Arc::new(SingleFlight::<u32, u32>::new());
        let runs = Arc::new(AtomicU32::new(0));
        let mut hs = Vec::new();
        for _ in 0..8 {
            let (sf, runs) = (sf.clone(), runs.clone());
            hs.push(tokio::spawn(async move {
                sf.run(1, async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    7
                })
                .await
            }));
        }
        for h in hs {
            assert_eq!(h.await.unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // After completion a new call runs again.
        assert_eq!(sf.run(1, async { 8 }).await, 8);
    }
}
