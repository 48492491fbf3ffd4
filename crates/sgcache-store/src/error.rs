//! Storage errors. Every error says whether retrying is worthwhile, so the retry and breaker
//! layers decide on [`StoreError::is_temporary`] and [`StoreError::kind`], never on strings.

use std::time::Duration;

/// What went wrong, coarsely: enough for retry and circuit-breaker policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The URL or configuration is unusable (never retried; raised before any I/O).
    Config,
    /// The backend refused our credentials or permissions. Retrying will not help; the
    /// breaker opens at once.
    Auth,
    /// A transient failure (connection refused or reset, 5xx, throttling). Worth a retry.
    Temporary,
    /// A failure that will repeat (4xx other than auth, unsupported operation, …).
    Permanent,
    /// The operation did not finish within its time budget.
    Timeout,
    /// The object or entry the remote returned failed verification (hash, size, format,
    /// signature). It was not used.
    Corrupt,
    /// The circuit breaker is open: the remote is off for the rest of the run.
    BreakerOpen,
    /// Writing into the caller's local sink failed (a local problem, not a remote one).
    Sink,
}

/// An error from the remote tier. Displays as one line naming the operation and the key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Bad URL, unknown scheme, or a backend this build was compiled without.
    #[error("remote `{url}`: {reason}")]
    Config {
        /// The URL as given (secrets masked).
        url: String,
        /// Why it is unusable, and what is accepted.
        reason: String,
    },
    /// The backend reported an error.
    #[error("remote {op} `{key}` failed: {message}")]
    Backend {
        /// `get`, `put`, `exists` or `delete`.
        op: &'static str,
        /// The key involved.
        key: String,
        /// Coarse classification for retry and breaker policy.
        kind: ErrorKind,
        /// The backend's own message, on one line.
        message: String,
    },
    /// The operation ran out of time.
    #[error("remote {op} `{key}` timed out after {after:?}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The key involved.
        key: String,
        /// The budget that ran out.
        after: Duration,
    },
    /// Verification of a remote object or entry failed.
    #[error("remote {what} `{key}` rejected: {reason}")]
    Corrupt {
        /// `object` or `action entry`.
        what: &'static str,
        /// The key involved.
        key: String,
        /// Which check failed.
        reason: String,
    },
    /// The remote could not be reached at all (connection refused, connect timed out, host
    /// unreachable). Temporary, and a sign the remote is down rather than slow.
    #[error("remote {op} `{key}`: cannot connect: {message}")]
    Unreachable {
        /// The operation.
        op: &'static str,
        /// The key involved.
        key: String,
        /// What the connection attempt said, on one line.
        message: String,
    },
    /// The remote was switched off earlier in this run.
    #[error("remote is switched off for the rest of this run (circuit breaker open)")]
    BreakerOpen,
    /// The local sink failed while an object was being fetched.
    #[error("writing remote object `{key}` locally failed: {source}")]
    Sink {
        /// The key being fetched.
        key: String,
        /// The local I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// The coarse kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Config { .. } => ErrorKind::Config,
            StoreError::Backend { kind, .. } => *kind,
            StoreError::Timeout { .. } => ErrorKind::Timeout,
            StoreError::Unreachable { .. } => ErrorKind::Temporary,
            StoreError::Corrupt { .. } => ErrorKind::Corrupt,
            StoreError::BreakerOpen => ErrorKind::BreakerOpen,
            StoreError::Sink { .. } => ErrorKind::Sink,
        }
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self.kind(), ErrorKind::Temporary)
    }

    /// Whether this error says something about the remote's health (and so feeds the
    /// circuit breaker). Corrupt data and local sink failures do not.
    pub fn is_remote_failure(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Auth | ErrorKind::Temporary | ErrorKind::Permanent | ErrorKind::Timeout
        )
    }

    /// Whether the remote did not answer at all: a refused or timed-out connection, or no
    /// first byte within the time limit. One of these before the remote has ever answered
    /// means it is down.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            StoreError::Unreachable { .. } | StoreError::Timeout { .. }
        )
    }

    /// A backend error, for [`crate::Store`] implementations.
    pub fn backend(
        op: &'static str,
        key: impl Into<String>,
        kind: ErrorKind,
        message: impl std::fmt::Display,
    ) -> StoreError {
        let message = message.to_string().replace(['\n', '\r'], " ");
        StoreError::Backend {
            op,
            key: key.into(),
            kind,
            message,
        }
    }

    pub(crate) fn corrupt(what: &'static str, key: &str, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            what,
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}
