//! What this machine knows about the remote, kept in the local tier's `sgcache/` directory so
//! every process (each go command's sgcache, the daemon) shares it:
//!
//! | file | what | written when |
//! |---|---|---|
//! | `remote-<key>.down` | the remote is down: since, until, cool-down, why (JSON) | the breaker opens; removed when it closes |
//! | `negative-<key>.bin` | action ids the remote did not have, with when (40-byte records) | a lookup finds nothing |
//! | `uploaded-<key>.bin` | entries this machine uploaded, with when (40-byte records: SHA-256 of action ‖ output ‖ size, time) | an upload completes |
//! | `manifest-<key>.bin` | the last manifest seen or stored for a build context | loaded or stored |
//!
//! `<key>` is 16 hex digits of a hash of what the knowledge depends on: the remote (URL and
//! extra keys) for the outage; plus the namespaces read and the trusted keys for the negative
//! cache and the manifest copy, so changing either starts from nothing. Every file is written
//! whole to a temp file and renamed (or appended in whole records), and read with every
//! anomaly treated as "nothing known": a lost or torn file only costs a request.
//!
//! Lifetimes: a negative entry and a manifest copy are used for [`KNOWLEDGE_TTL`] (10 min),
//! an uploaded entry for [`UPLOADED_TTL`] (1 hour: the go command puts some entries again on
//! every build, unchanged, and uploading them again each time would cost every warm build a
//! round trip; after an hour they are uploaded again, so a remote that expired them gets them
//! back).
//! An entry another machine uploads meanwhile is therefore a miss here for at most that long
//! (the go command builds it, as without a remote); a manifest another machine stores meanwhile
//! is seen by this machine's prefetch at most that much later. The outage record lasts its
//! cool-down (30 s, doubling to 10 min while probes fail).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sgcache_store::RemoteConfig;
use sgcache_store::layers::{BreakerEvent, BreakerState};
use sha2::{Digest, Sha256};

use crate::lock;

/// How long a negative entry or a manifest copy is believed.
pub const KNOWLEDGE_TTL: Duration = Duration::from_secs(600);
/// How long an upload is believed to stand.
pub const UPLOADED_TTL: Duration = Duration::from_secs(3600);
/// Most negative entries kept (older ones are dropped when the file is compacted).
const NEGATIVE_MAX: usize = 8192;
/// Bytes per negative record: action id (32), Unix seconds (i64 LE).
const NEGATIVE_RECORD: usize = 40;

fn unix_ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

fn key_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(b"sgcache-local-state-v1\0");
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..8])
}

/// The key of the remote itself (URL and extra keys).
fn remote_key(cfg: &RemoteConfig) -> String {
    let mut parts: Vec<Vec<u8>> = vec![cfg.url.as_bytes().to_vec()];
    for (k, v) in &cfg.extra {
        parts.push(format!("{k}={v}").into_bytes());
    }
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    key_hex(&refs)
}

/// The key of what the remote holds *for this job*: the remote, the namespaces read (in
/// order) and the trusted keys.
pub(crate) fn view_key(cfg: &RemoteConfig) -> String {
    let mut parts: Vec<Vec<u8>> = vec![remote_key(cfg).into_bytes()];
    for ns in cfg.read_order() {
        parts.push(format!("ns={ns}").into_bytes());
    }
    let mut keys: Vec<String> = cfg.trusted_keys.iter().map(|k| k.to_text()).collect();
    if let Some(s) = &cfg.signing_key {
        keys.push(s.public().to_text());
    }
    keys.sort();
    for k in keys {
        parts.push(format!("key={k}").into_bytes());
    }
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    key_hex(&refs)
}

/// Writes `data` to `path` whole (temp file, rename).
pub(crate) fn write_whole(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The recorded outage of one remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    /// The remote, secrets masked.
    pub remote: String,
    /// When it was first found down, Unix ns.
    pub since_unix_ns: i64,
    /// Until when no process tries it (then one probes), Unix ns.
    pub until_unix_ns: i64,
    /// The current cool-down, ms (doubles after each failed probe).
    pub cooldown_ms: u64,
    /// The failure that decided it, one line.
    pub reason: String,
}

impl Outage {
    /// Whether the remote is still to be left alone at `now`.
    pub fn active(&self, now: SystemTime) -> bool {
        self.until_unix_ns > unix_ns(now)
    }

    /// `since` as RFC 3339, for messages.
    pub fn since(&self) -> String {
        let t = UNIX_EPOCH + Duration::from_nanos(self.since_unix_ns.max(0) as u64);
        humantime::format_rfc3339_seconds(t).to_string()
    }
}

/// Where the outage of `cfg`'s remote is recorded under the local tier `state_dir`.
pub fn outage_path(state_dir: &Path, cfg: &RemoteConfig) -> PathBuf {
    state_dir.join(format!("remote-{}.down", remote_key(cfg)))
}

/// Reads a recorded outage (`None`: none, or unreadable).
pub fn read_outage(path: &Path) -> Option<Outage> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Starts `breaker` from the recorded outage at `path`, and records its changes there from
/// now on. Returns the outage it started from, if any.
pub(crate) fn share_outage(path: PathBuf, label: String, breaker: &BreakerState) -> Option<Outage> {
    let known = read_outage(&path);
    if let Some(o) = &known {
        let left = Duration::from_nanos(
            o.until_unix_ns
                .saturating_sub(unix_ns(SystemTime::now()))
                .max(0) as u64,
        );
        breaker.restore(Some(left), Duration::from_millis(o.cooldown_ms));
    }
    let since = Mutex::new(known.as_ref().map(|o| o.since_unix_ns));
    breaker.observe(move |e| match e {
        BreakerEvent::Opened { cooldown, reason } => {
            let now = SystemTime::now();
            let since = *lock(&since).get_or_insert(unix_ns(now));
            let o = Outage {
                remote: label.clone(),
                since_unix_ns: since,
                until_unix_ns: unix_ns(now + *cooldown),
                cooldown_ms: cooldown.as_millis() as u64,
                reason: reason.clone(),
            };
            let data = serde_json::to_vec(&o).expect("an outage serializes");
            if let Err(err) = write_whole(&path, &data) {
                tracing::debug!("recording the remote outage in `{}`: {err}", path.display());
            }
        }
        BreakerEvent::Closed => {
            *lock(&since) = None;
            let _ = std::fs::remove_file(&path);
        }
    });
    known
}

/// A set of 32-byte ids, each believed for a while, shared by the processes of one machine
/// through an append-only file: action ids the remote did not have (the negative cache), or
/// entries this machine uploaded.
#[derive(Debug)]
pub(crate) struct RecentIds {
    path: PathBuf,
    ttl: Duration,
    /// Id → when it was recorded, Unix seconds.
    known: Mutex<HashMap<[u8; 32], i64>>,
}

impl RecentIds {
    /// Loads the records of `path` younger than `ttl`; compacts the file when it has grown.
    pub(crate) fn load(path: PathBuf, ttl: Duration) -> RecentIds {
        let now = unix_ns(SystemTime::now()) / 1_000_000_000;
        let ttl_s = ttl.as_secs() as i64;
        let data = std::fs::read(&path).unwrap_or_default();
        let records = data.len() / NEGATIVE_RECORD;
        let mut known = HashMap::new();
        for r in data.chunks_exact(NEGATIVE_RECORD) {
            let id: [u8; 32] = r[..32].try_into().expect("32 bytes");
            let at = i64::from_le_bytes(r[32..].try_into().expect("8 bytes"));
            if at <= now && now - at < ttl_s {
                known.insert(id, at);
            }
        }
        if known.len() > NEGATIVE_MAX {
            let mut v: Vec<([u8; 32], i64)> = known.into_iter().collect();
            v.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
            v.truncate(NEGATIVE_MAX);
            known = v.into_iter().collect();
        }
        let n = RecentIds {
            path,
            ttl,
            known: Mutex::new(known),
        };
        if records > 2 * NEGATIVE_MAX.min(n.len().max(1024)) {
            n.compact();
        }
        n
    }

    fn len(&self) -> usize {
        lock(&self.known).len()
    }

    fn compact(&self) {
        let mut data = Vec::new();
        for (id, at) in lock(&self.known).iter() {
            data.extend_from_slice(id);
            data.extend_from_slice(&at.to_le_bytes());
        }
        if let Err(e) = write_whole(&self.path, &data) {
            tracing::debug!("compacting `{}`: {e}", self.path.display());
        }
    }

    /// Whether `id` was recorded recently.
    pub(crate) fn contains(&self, id: &[u8; 32]) -> bool {
        let now = unix_ns(SystemTime::now()) / 1_000_000_000;
        lock(&self.known)
            .get(id)
            .is_some_and(|at| now - *at < self.ttl.as_secs() as i64)
    }

    /// Records `id` (one appended record).
    pub(crate) fn insert(&self, id: [u8; 32]) {
        let now = unix_ns(SystemTime::now()) / 1_000_000_000;
        lock(&self.known).insert(id, now);
        let mut rec = Vec::with_capacity(NEGATIVE_RECORD);
        rec.extend_from_slice(&id);
        rec.extend_from_slice(&now.to_le_bytes());
        let r = (|| {
            if let Some(d) = self.path.parent() {
                std::fs::create_dir_all(d)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?
                .write_all(&rec)
        })();
        if let Err(e) = r {
            tracing::debug!("recording in `{}`: {e}", self.path.display());
        }
    }

    /// Forgets `id` in this process (the file keeps it until it expires).
    pub(crate) fn remove(&self, id: &[u8; 32]) {
        lock(&self.known).remove(id);
    }
}

/// The id under which an uploaded entry is remembered.
pub(crate) fn uploaded_id(e: &sgcache_types::IndexEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(e.action.as_bytes());
    h.update(e.output.as_bytes());
    h.update(e.size.to_le_bytes());
    h.finalize().into()
}

/// Where the record of this machine's uploads to `cfg`'s view of the remote lives.
pub(crate) fn uploaded_path(state_dir: &Path, cfg: &RemoteConfig) -> PathBuf {
    state_dir.join(format!("uploaded-{}.bin", view_key(cfg)))
}

/// Where the negative cache of `cfg`'s view of the remote lives.
pub(crate) fn negative_path(state_dir: &Path, cfg: &RemoteConfig) -> PathBuf {
    state_dir.join(format!("negative-{}.bin", view_key(cfg)))
}

/// Where the manifest copy of build context `name` lives.
pub(crate) fn manifest_copy_path(
    state_dir: &Path,
    cfg: &RemoteConfig,
    name: &sgcache_store::ManifestName,
) -> PathBuf {
    state_dir.join(format!(
        "manifest-{}-{}.bin",
        view_key(cfg),
        hex::encode(&name.0[..8])
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_persist_expire_and_separate_views() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = RemoteConfig::new("file:///x");
        let p = negative_path(dir.path(), &cfg);
        let a = [1u8; 32];
        let n = RecentIds::load(p.clone(), KNOWLEDGE_TTL);
        assert!(!n.contains(&a));
        n.insert(a);
        assert!(n.contains(&a));
        let again = RecentIds::load(p.clone(), KNOWLEDGE_TTL);
        assert!(again.contains(&a), "shared through the file");
        // An old record is not believed.
        let mut old = vec![2u8; 32];
        old.extend_from_slice(&(unix_ns(SystemTime::now()) / 1_000_000_000 - 3600).to_le_bytes());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(&old)
            .unwrap();
        assert!(!RecentIds::load(p.clone(), KNOWLEDGE_TTL).contains(&[2u8; 32]));
        assert!(RecentIds::load(p.clone(), Duration::from_secs(7200)).contains(&[2u8; 32]));
        // Another namespace set is another file.
        cfg.read_namespaces = vec!["main".into()];
        assert_ne!(negative_path(dir.path(), &cfg), p);
        // Garbage is nothing known.
        std::fs::write(&p, b"garbage").unwrap();
        assert!(!RecentIds::load(p, KNOWLEDGE_TTL).contains(&a));
    }

    #[test]
    fn outage_is_shared_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RemoteConfig::new("file:///y");
        let path = outage_path(dir.path(), &cfg);
        let metrics = std::sync::Arc::new(sgcache_types::Metrics::default());
        let b1 = BreakerState::new(
            5,
            Duration::from_secs(30),
            Duration::from_secs(600),
            "r",
            metrics.clone(),
        );
        assert_eq!(share_outage(path.clone(), "r".into(), &b1), None);
        let err = sgcache_store::StoreError::Timeout {
            op: "get",
            key: "k".into(),
            after: Duration::from_secs(1),
        };
        b1.record(Err(&err));
        assert!(
            b1.is_open(),
            "a remote that never answered and timed out is down"
        );
        let o = read_outage(&path).expect("recorded");
        assert!(o.active(SystemTime::now()));
        assert_eq!(o.cooldown_ms, 30_000);
        // Another process starts from it: open, without a request.
        let b2 = BreakerState::new(
            5,
            Duration::from_secs(30),
            Duration::from_secs(600),
            "r",
            metrics,
        );
        assert!(share_outage(path.clone(), "r".into(), &b2).is_some());
        assert!(b2.is_open());
        assert!(!b2.allow());
        // A success anywhere clears it.
        b1.record(Ok(()));
        assert!(read_outage(&path).is_none());
    }
}
