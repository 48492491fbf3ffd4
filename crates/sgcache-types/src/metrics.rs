//! Every counter sgcache keeps, declared once.
//!
//! [`Metrics`] holds one [`Counter`] per field; a process shares one `Arc<Metrics>` between
//! the serve loop, the remote cache, the tiering session and the daemon client, and each
//! adds to its own fields. [`Metrics::snapshot`] reads them into a [`MetricsSnapshot`]: plain
//! `u64` fields that serialize as one flat JSON object (the stats file, `stats --json`, the
//! `SGCACHE_VERBOSE=json` summary, the daemon's `--status`), and that
//! [`MetricsSnapshot::fields`] lists with their documentation (the human summary, the
//! Prometheus endpoint, `docs/`).
//!
//! Every field is a count that only grows within a process (sizes in bytes, times in
//! milliseconds, both named so); snapshots of several processes add up
//! ([`MetricsSnapshot::merge`]), which is how the stats file accumulates them. State that
//! decides behaviour (whether the next manifest must be repacked, whether the breaker is open)
//! is never kept here.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A count shared between threads (relaxed: counters order nothing).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One field of a snapshot: its name, its documentation and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The field name (also the JSON key; Prometheus adds `sgcache_` and `_total`).
    pub name: &'static str,
    /// One sentence: what is counted, in which unit.
    pub help: &'static str,
    /// The value.
    pub value: u64,
}

macro_rules! metrics {
    ($( #[doc = $doc:literal] $name:ident, )+) => {
        /// Every counter of one process, as typed fields (see the module docs).
        #[derive(Debug, Default)]
        pub struct Metrics {
            $( #[doc = $doc] pub $name: Counter, )+
        }

        /// The counters' values at one moment; serializes as a flat JSON object.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct MetricsSnapshot {
            $( #[doc = $doc] pub $name: u64, )+
        }

        impl Metrics {
            /// Reads every counter.
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $( $name: self.$name.get(), )+ }
            }

            /// Adds a snapshot's values (e.g. what a fallback did) into these counters.
            pub fn add(&self, s: &MetricsSnapshot) {
                $( self.$name.add(s.$name); )+
            }
        }

        impl MetricsSnapshot {
            /// Adds `other` into `self` (saturating).
            pub fn merge(&mut self, other: &MetricsSnapshot) {
                $( self.$name = self.$name.saturating_add(other.$name); )+
            }

            /// Every field, in declaration order.
            pub fn fields(&self) -> Vec<Field> {
                vec![ $( Field { name: stringify!($name), help: $doc.trim(), value: self.$name }, )+ ]
            }
        }
    };
}

metrics! {
    // The go command's requests (serve loop).
    /// Get requests from the go command.
    gets,
    /// Gets answered with a hit (from the local tier, or after a remote download).
    hits,
    /// Hits whose entry was not in the local tier when the get arrived (fetched from the remote, by this get or by prefetch while it waited).
    hits_remote,
    /// Gets answered with a miss.
    misses,
    /// Put requests from the go command.
    puts,
    /// Bytes received in put bodies.
    put_bytes,
    /// Bytes of outputs named by hits.
    hit_bytes,
    /// Requests answered with an error.
    errors,
    /// Gets whose reply waited on the remote (a local miss looked up remotely).
    remote_waits,
    /// Total time gets waited on the remote, in milliseconds.
    remote_wait_ms,

    // The remote cache (store).
    /// Remote objects downloaded and verified.
    remote_hits,
    /// Remote keys asked for that the remote did not have.
    remote_misses,
    /// Remote operations that failed (after retries), including downloads cut short.
    remote_errors,
    /// Remote action entries and manifests not used: malformed, unsigned where a signature is required, or a bad signature.
    remote_rejected_entries,
    /// Remote entries (signed or in a trusted namespace) naming another output than one this run already trusted for the same action.
    remote_conflicting_entries,
    /// Remote objects that failed verification (size or SHA-256), alone or in a pack.
    remote_corrupt_objects,
    /// Remote objects or entries refused before download because they claim more bytes than allowed.
    remote_oversized,
    /// Bytes downloaded from the remote, as stored (compressed).
    remote_bytes_down,
    /// Bytes uploaded to the remote, as stored (compressed).
    remote_bytes_up,
    /// Times the circuit breaker opened (the remote was switched off).
    breaker_trips,
    /// Remote requests not made because the remote was known to be down.
    remote_skipped_down,
    /// Remote lookups answered from the negative cache (a recent miss), without a request.
    remote_negative_hits,

    // Uploads.
    /// Uploads delivered (entry written; the object uploaded or already there).
    uploads,
    /// Uploads whose object the remote already had.
    uploads_skipped_existing,
    /// Uploads that overwrote an object this machine had found corrupt (healing).
    uploads_healed,
    /// Uploads not made because this machine uploaded the same entry within the hour (the go command puts some entries again, unchanged, on every build).
    uploads_skipped_recent,
    /// Uploads that failed.
    upload_failed,
    /// Uploads refused because the queue was full.
    upload_dropped,
    /// Uploads not attempted because the remote was down or switched off.
    upload_skipped_down,
    /// Uploads still queued or running when the upload deadline passed.
    upload_abandoned,

    // Manifests and packs (tiering session).
    /// Build manifests stored.
    manifests_stored,
    /// Manifest stores skipped because this run could not read the previous manifest or saw the remote fail.
    manifests_skipped,
    /// Packs uploaded.
    packs_stored,
    /// Bytes of packs uploaded, as stored (part of remote_bytes_up).
    pack_bytes_up,
    /// Packs not uploaded because the remote had them.
    packs_skipped_existing,
    /// Packs downloaded.
    packs_fetched,
    /// Records in the manifests prefetch loaded.
    prefetch_manifest_records,
    /// Outputs prefetch took from packs.
    prefetch_pack_objects,
    /// Packs a manifest listed that the remote no longer had.
    prefetch_packs_missing,
    /// Lookups prefetch started one by one (outputs no pack delivered).
    prefetch_lookups,
    /// Of those, lookups that found their entry.
    prefetch_found,

    // The shared daemon, seen from a go command's sgcache.
    /// Lookups handed to the daemon.
    daemon_lookups,
    /// Of those, lookups the daemon found.
    daemon_found,
    /// Uploads the daemon acknowledged.
    daemon_uploads,
    /// Runs that gave up on the daemon mid-way and finished their remote work in-process.
    daemon_fallbacks,
    // The daemon itself.
    /// Clients the daemon served.
    daemon_clients,
}

impl MetricsSnapshot {
    /// The fields that are not zero.
    pub fn nonzero(&self) -> impl Iterator<Item = Field> {
        self.fields().into_iter().filter(|f| f.value != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_serializes_flat_and_merges() {
        let m = Metrics::default();
        m.gets.add(3);
        m.hits.inc();
        m.remote_bytes_down.add(10);
        let s = m.snapshot();
        assert_eq!((s.gets, s.hits, s.remote_bytes_down), (3, 1, 10));
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["gets"], 3);
        assert_eq!(json["remote_bytes_down"], 10);
        // Unknown keys are ignored and missing ones are zero, so stats files of other
        // versions still read.
        let old: MetricsSnapshot =
            serde_json::from_str(r#"{"gets":2,"extra":{"x":1},"version":1}"#).unwrap();
        assert_eq!(old.gets, 2);
        let mut t = s;
        t.merge(&old);
        assert_eq!(t.gets, 5);
        let names: Vec<_> = s.nonzero().map(|f| f.name).collect();
        assert_eq!(names, ["gets", "hits", "remote_bytes_down"]);
        assert!(
            s.fields()
                .iter()
                .all(|f| !f.help.is_empty() && f.help.ends_with('.'))
        );
        m.add(&old);
        assert_eq!(m.gets.get(), 5);
    }
}
