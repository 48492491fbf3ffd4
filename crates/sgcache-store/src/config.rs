//! [`RemoteConfig`]: everything the remote tier needs, resolved by the binary's
//! configuration layer, and the defaults (one place; the CLI's `--help` and
//! `docs/configuration.md` show the same values, and a test in the binary checks they agree).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::keys::{PublicKey, SecretKey};

/// Defaults, each with its text form for the CLI declaration.
pub mod defaults {
    use std::time::Duration;

    /// Time limit for a remote request's first byte (retries included). A cache whose
    /// small reads take longer than this is not saving the build any time; a remote that
    /// accepts connections and never answers costs a go command no more than this.
    pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(1);
    /// [`FIRST_BYTE_TIMEOUT`] as the CLI writes it.
    pub const FIRST_BYTE_TIMEOUT_TEXT: &str = "1s";
    /// The longest gap between two chunks of a transfer: a large object may take many
    /// seconds to stream, but a transfer that stalls this long is dead.
    pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
    /// Time limit for a TCP (and TLS) connection to the remote.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    /// [`CONNECT_TIMEOUT`] as the CLI writes it.
    pub const CONNECT_TIMEOUT_TEXT: &str = "1s";
    /// How long the end of a run waits for uploads.
    pub const UPLOAD_DEADLINE: Duration = Duration::from_secs(10);
    /// [`UPLOAD_DEADLINE`] as the CLI writes it.
    pub const UPLOAD_DEADLINE_TEXT: &str = "10s";
    /// The breaker's first cool-down.
    pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);
    /// [`BREAKER_COOLDOWN`] as the CLI writes it.
    pub const BREAKER_COOLDOWN_TEXT: &str = "30s";
    /// The longest cool-down (each failed probe doubles it up to this).
    pub const BREAKER_MAX_COOLDOWN: Duration = Duration::from_secs(600);
    /// The largest object (or pack) a remote entry may claim, in bytes. The go command's
    /// largest outputs (linked test binaries of big modules) are a few hundred MB at most.
    pub const MAX_OBJECT: u64 = 1 << 30;
    /// [`MAX_OBJECT`] as the CLI writes it.
    pub const MAX_OBJECT_TEXT: &str = "1GiB";
}

/// Which directions of the remote are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Read and write (the default).
    #[default]
    ReadWrite,
    /// Never write the remote: for untrusted jobs such as pull requests from forks.
    ReadOnly,
    /// Never read the remote: for seeding jobs.
    WriteOnly,
}

impl Mode {
    /// `read-write`, `read-only`, `write-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "read-write",
            Mode::ReadOnly => "read-only",
            Mode::WriteOnly => "write-only",
        }
    }
}

/// Everything the remote tier needs; resolved by the binary's configuration layer.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The remote URL (see `docs/remote.md` for the forms).
    pub url: String,
    /// Namespace (trust scope) written to and read first. Default `default`.
    pub namespace: String,
    /// Further namespaces read, in order, after `namespace` (e.g. `main`).
    pub read_namespaces: Vec<String>,
    /// Signs the action entries and manifests this job writes.
    pub signing_key: Option<SecretKey>,
    /// Public keys whose signatures readers accept (see [`crate::keys`] for the policy).
    pub trusted_keys: Vec<PublicKey>,
    /// zstd level for uploaded objects; `None` = store raw. Ignored (always raw) for
    /// http(s):// remotes.
    pub compression_level: Option<i32>,
    /// Read/write directions.
    pub mode: Mode,
    /// Time limit for a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time limit for a request's first byte, all its retries included. An upload gets one
    /// extra second per MiB of body.
    pub first_byte_timeout: Duration,
    /// The longest gap between two chunks of a transfer.
    pub stall_timeout: Duration,
    /// How long draining waits for queued uploads.
    pub upload_deadline: Duration,
    /// Uploads in flight at once.
    pub upload_concurrency: usize,
    /// Uploads waiting; beyond this, new ones are refused (and counted).
    pub upload_queue: usize,
    /// Consecutive failures after which the breaker opens (0 = never). Credential errors
    /// open it at once.
    pub breaker_threshold: u32,
    /// How long an open breaker stays open before one probe (doubling after each failed
    /// probe, up to [`defaults::BREAKER_MAX_COOLDOWN`]).
    pub breaker_cooldown: Duration,
    /// With each stored manifest, also store its outputs in packs.
    pub packs: bool,
    /// The largest object an entry, record or pack may claim, in bytes; larger claims are
    /// refused before any download (counted in `remote_oversized`).
    pub max_object_size: u64,
    /// OpenDAL configuration keys for the service, overriding the URL's query parameters
    /// (e.g. `access_key_id`, `account_key`, `credential_path`).
    pub extra: BTreeMap<String, String>,
}

impl RemoteConfig {
    /// The defaults documented in `docs/remote.md`, for `url`.
    pub fn new(url: impl Into<String>) -> RemoteConfig {
        RemoteConfig {
            url: url.into(),
            namespace: "default".to_string(),
            read_namespaces: Vec::new(),
            signing_key: None,
            trusted_keys: Vec::new(),
            compression_level: Some(3),
            mode: Mode::ReadWrite,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            first_byte_timeout: defaults::FIRST_BYTE_TIMEOUT,
            stall_timeout: defaults::STALL_TIMEOUT,
            upload_deadline: defaults::UPLOAD_DEADLINE,
            upload_concurrency: 8,
            upload_queue: 1024,
            breaker_threshold: 5,
            breaker_cooldown: defaults::BREAKER_COOLDOWN,
            packs: true,
            max_object_size: defaults::MAX_OBJECT,
            extra: BTreeMap::new(),
        }
    }

    /// The namespaces read, in order, without repeats: our own first.
    pub fn read_order(&self) -> Vec<&str> {
        let mut v: Vec<&str> = vec![&self.namespace];
        for ns in &self.read_namespaces {
            if !v.contains(&ns.as_str()) {
                v.push(ns);
            }
        }
        v
    }
}
