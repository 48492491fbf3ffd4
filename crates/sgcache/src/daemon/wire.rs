//! The client ↔ daemon wire format: one JSON object per line over the Unix socket.
//!
//! A connection starts with the client's [`ClientMsg::Hello`] (wire version, configuration
//! hash); the daemon answers [`DaemonMsg::Welcome`] or [`DaemonMsg::Refused`] and closes.
//! After that, lookups and uploads carry a client-chosen request id and their answers may
//! come back in any order. Nothing on this socket is trusted to name a file: a `found`
//! answer only tells the client to read the entry from the local tier itself, and an upload
//! names ids that the daemon resolves (and checks) in the local tier. Ids travel as 64 hex
//! digits; an index entry as `{"action","output","size","time"}`.

use serde::{Deserialize, Serialize};
use sgcache_types::{ActionId, IndexEntry, MetricsSnapshot};

/// Bumped whenever a message changes meaning; a daemon refuses other versions.
pub const WIRE_VERSION: u32 = 4;

/// Client → daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClientMsg {
    /// First message. `manifest` names the build context (64 hex digits) for prefetch and
    /// the manifest.
    Hello {
        version: u32,
        config: String,
        manifest: Option<String>,
        prefetch: bool,
        pid: u32,
    },
    /// Fetch `action` into the local tier; answered by [`DaemonMsg::Found`].
    Lookup { id: u64, action: ActionId },
    /// Upload the local entry; answered by [`DaemonMsg::Queued`] once the job is in the
    /// daemon's queue.
    Upload { id: u64, entry: IndexEntry },
    /// Entries this run used, in order of first use (batched).
    Used { entries: Vec<IndexEntry> },
    /// End of the run: store the manifest; answered by [`DaemonMsg::Bye`].
    Bye,
    /// `sgcache prefetch`: warm the local tier for these build contexts (64 hex digits
    /// each), reading their manifests afresh; answered by [`DaemonMsg::Prefetched`] at once,
    /// or with `wait` once every one has finished.
    Prefetch { manifests: Vec<String>, wait: bool },
    /// `sgcache daemon --status`.
    Status,
    /// `sgcache daemon --stop`.
    Stop,
}

/// Daemon → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DaemonMsg {
    /// The hello was accepted.
    Welcome { version: u32, pid: u32 },
    /// The hello was refused (the connection closes).
    Refused { reason: String },
    /// Answer to a lookup: whether the entry is now in the local tier.
    Found { id: u64, found: bool },
    /// Answer to an upload: queued (`ok`), or refused because the local tier does not hold
    /// that entry (or the queue refused it).
    Queued { id: u64, ok: bool },
    /// Answer to `bye`.
    Bye,
    /// Answer to `prefetch`: how many contexts it started (or joined), and, when it waited,
    /// what prefetch took from the remote meanwhile (records loaded, outputs fetched).
    Prefetched {
        contexts: u64,
        records: u64,
        outputs: u64,
    },
    /// Answer to `status`.
    Status { status: Box<DaemonStatus> },
    /// Answer to `stop`.
    Stopping,
}

/// What `sgcache daemon --status` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub pid: u32,
    pub uptime_ms: u64,
    pub clients_now: u64,
    pub lookups: u64,
    pub lookups_found: u64,
    pub uploads_queued: u64,
    pub uploads_refused: u64,
    pub uploads_pending: u64,
    /// Build contexts with a session in this daemon.
    pub contexts: u64,
    /// The circuit breaker: `closed`, `open` or `half-open`.
    pub breaker: String,
    /// Every counter of the daemon (its remote traffic, prefetch, uploads).
    pub metrics: MetricsSnapshot,
}

/// Parses a 64-hex-digit name.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(s, &mut id).ok()?;
    Some(id)
}

/// Serializes one message as a line.
pub fn line<T: Serialize>(m: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec(m).expect("wire messages always serialize");
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_shape() {
        let m = ClientMsg::Lookup {
            id: 7,
            action: ActionId::from_bytes([0xab; 32]),
        };
        let l = line(&m);
        assert!(
            l.starts_with(br#"{"op":"lookup","id":7,"action":"abab"#),
            "{l:?}"
        );
        assert_eq!(serde_json::from_slice::<ClientMsg>(&l).unwrap(), m);
        let d: DaemonMsg = serde_json::from_str(r#"{"op":"found","id":3,"found":true}"#).unwrap();
        assert_eq!(d, DaemonMsg::Found { id: 3, found: true });
        assert!(serde_json::from_str::<ClientMsg>(r#"{"op":"format_disk"}"#).is_err());
        let bad = r#"{"op":"lookup","id":1,"action":"zz"}"#;
        assert!(serde_json::from_str::<ClientMsg>(bad).is_err());
        assert_eq!(parse_hex32(&"0f".repeat(32)), Some([0x0f; 32]));
        assert_eq!(parse_hex32("zz"), None);
    }
}
