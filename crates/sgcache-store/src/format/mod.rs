//! The byte formats sgcache writes to a remote, one module each; `docs/remote.md` documents
//! them byte for byte and each module's golden tests pin them.
//!
//! | module | under | what |
//! |---|---|---|
//! | [`baseline`] | `<ns>/ac/<baseline id>` | an explain baseline's signed header, naming its blob in `cas/` |
//! | [`entry`] | `<ns>/ac/<action>` | an action entry: one line, the output id, size, time, optional signature |
//! | [`manifest`] | `<ns>/ac/<manifest id>` | a build context's manifest: records and the packs holding their outputs |
//! | [`pack`] | `cas/<pack id>` | a pack: a directory of outputs, then their bytes |
//! | [`object`] | `cas/<output>` | the 4-byte object header (framed layout) and the verifying decoder |
//! | [`namespace`] | key names | how a namespace becomes one key segment, and the plain layout's action keys |
//!
//! Every decoder takes untrusted bytes: it returns an error or a value, never panics, and
//! allocates no more than the input justifies (the `remote_formats` fuzz target holds it to
//! that).

pub mod baseline;
pub mod entry;
pub mod manifest;
pub mod namespace;
pub mod object;
pub mod pack;

/// Why a stored action entry or manifest was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryRejection {
    /// Not well formed.
    Malformed,
    /// Another format version (written by another sgcache): a plain miss.
    OtherVersion,
    /// Unsigned, and the trust policy requires a signature here.
    Unsigned,
    /// Signed by a key that is not trusted.
    UntrustedKey,
    /// The signature does not verify: another namespace, action or manifest, or tampering.
    BadSignature,
}

impl EntryRejection {
    /// Whether this is a refusal worth counting and telling (not another version's data).
    pub fn is_rejection(self) -> bool {
        self != EntryRejection::OtherVersion
    }
}

/// 64 lowercase hex digits.
pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Canonical decimal only: no `+`, no leading zeros (a `-` where `T` is signed).
pub(crate) fn parse_dec<T: std::str::FromStr>(s: &str) -> Option<T> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// `N` bytes of `b` from `at`; callers have checked the length.
pub(crate) fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b[at..at + N]
        .try_into()
        .expect("length checked by the caller")
}
