//! An explain baseline's reference: what `sgcache explain record` stores next to the build
//! context's manifest, so a job with no local baseline can explain against another job's run.
//!
//! Two keys, like an action entry and its object:
//!
//! - `<ns>/ac/<storage id>` (the storage id derived from the [`BaselineName`], see
//!   [`BaselineName::storage_id`]): this small header, trusted like a manifest — namespace
//!   first, and with trusted keys only under a valid signature ([`crate::keys::Trust`]);
//! - `cas/<blob id>`: the baseline itself (`sgcache-explain`'s compressed `sgxb` file),
//!   an object like any other (framed raw: it is zstd already), verified by its SHA-256 on
//!   the way in. The header names that SHA-256, so the signature covers the blob.
//!
//! | field | bytes | content |
//! |---|---|---|
//! | magic | 4 | `sgb1` |
//! | blob id | 32 | SHA-256 of the blob: its `cas/` key |
//! | blob length | 8 | u64 LE, ≤ [`MAX_BLOB`] |
//! | signature | 0 or 72 | key id (8), Ed25519 signature (64) over `"sgcache-baseline-v1\0" ‖ namespace ‖ "\0" ‖ baseline name (32) ‖ key id (8) ‖` the 40 bytes between the magic and the signature |
//!
//! Other versions (`sgb` and another digit) are [`EntryRejection::OtherVersion`].

use sgcache_types::{ActionId, OutputId};
use sha2::{Digest, Sha256};

use super::{EntryRejection, array};
use crate::keys::{KeyId, SecretKey, Signature, Trust};

/// First bytes of a baseline header.
pub const MAGIC: &[u8; 4] = b"sgb1";
/// Bytes between the magic and the signature.
const BODY: usize = 32 + 8;
/// Bytes of a signature trailer.
const SIGNATURE: usize = 8 + 64;
/// The longest header.
pub const MAX_BYTES: usize = 4 + BODY + SIGNATURE;
/// The largest baseline blob stored or fetched (`go build std`'s is under 100 KiB; a
/// module of thousands of packages a few MiB).
pub const MAX_BLOB: u64 = 64 << 20;

/// The name of a baseline: a 32-byte hash of what identifies the recorded command.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BaselineName(pub [u8; 32]);

impl std::fmt::Debug for BaselineName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BaselineName({}…)", hex::encode(&self.0[..6]))
    }
}

impl BaselineName {
    /// The pseudo action id the header is stored under (in `ac/`, with the namespace and
    /// plain-layout key mapping of action entries; no real action id or manifest id
    /// collides with it: another domain string).
    pub fn storage_id(&self) -> ActionId {
        let mut h = Sha256::new();
        h.update(b"sgcache baseline v1\0");
        h.update(self.0);
        ActionId::from_bytes(h.finalize().into())
    }
}

/// What a header says: which object holds the baseline, and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaselineRef {
    /// The blob's SHA-256 (its `cas/` key).
    pub blob: OutputId,
    /// The blob's length in bytes.
    pub len: u64,
}

impl BaselineRef {
    /// The reference of `blob`.
    pub fn of(blob: &[u8]) -> BaselineRef {
        BaselineRef {
            blob: OutputId::from_bytes(Sha256::digest(blob).into()),
            len: blob.len() as u64,
        }
    }
}

fn signed_message(namespace: &str, name: &BaselineName, key: KeyId, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(20 + namespace.len() + 1 + 40 + body.len());
    m.extend_from_slice(b"sgcache-baseline-v1\0");
    m.extend_from_slice(namespace.as_bytes());
    m.push(0);
    m.extend_from_slice(&name.0);
    m.extend_from_slice(&key.0);
    m.extend_from_slice(body);
    m
}

/// Encodes the header of `r` for `namespace`; signed when `signer` is given.
pub fn encode(
    r: &BaselineRef,
    namespace: &str,
    name: &BaselineName,
    signer: Option<&SecretKey>,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(MAX_BYTES);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(r.blob.as_bytes());
    b.extend_from_slice(&r.len.to_le_bytes());
    if let Some(k) = signer {
        let sig = k.sign(|id| signed_message(namespace, name, id, &b[4..]));
        b.extend_from_slice(&sig.key.0);
        b.extend_from_slice(&sig.bytes);
    }
    b
}

/// Decodes a header read from `namespace` and applies `trust`.
pub fn decode(
    bytes: &[u8],
    namespace: &str,
    name: &BaselineName,
    trust: &Trust,
) -> Result<BaselineRef, EntryRejection> {
    let rest = match bytes.strip_prefix(MAGIC.as_slice()) {
        Some(r) => r,
        None if bytes.len() >= 4 && bytes.starts_with(b"sgb") => {
            return Err(EntryRejection::OtherVersion);
        }
        None => return Err(EntryRejection::Malformed),
    };
    let sig = match rest.len().checked_sub(BODY) {
        Some(0) => None,
        Some(SIGNATURE) => Some(Signature {
            key: KeyId(array(rest, BODY)),
            bytes: array(rest, BODY + 8),
        }),
        _ => return Err(EntryRejection::Malformed),
    };
    let body = &rest[..BODY];
    let len = u64::from_le_bytes(array(body, 32));
    if len > MAX_BLOB {
        return Err(EntryRejection::Malformed);
    }
    trust.check(namespace, sig.as_ref(), |k| {
        signed_message(namespace, name, k, body)
    })?;
    Ok(BaselineRef {
        blob: OutputId::from_bytes(array(body, 0)),
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BaselineRef {
        BaselineRef {
            blob: OutputId::from_bytes([0x5a; 32]),
            len: 0x0102_0304,
        }
    }

    #[test]
    fn golden_layout() {
        let name = BaselineName([7; 32]);
        let open = Trust::new(&[], None, "main");
        let b = encode(&sample(), "main", &name, None);
        assert_eq!(b.len(), 44);
        assert_eq!(&b[..4], b"sgb1");
        assert_eq!(&b[4..36], &[0x5a; 32]);
        assert_eq!(&b[36..44], &[4, 3, 2, 1, 0, 0, 0, 0]);
        assert_eq!(decode(&b, "main", &name, &open), Ok(sample()));
        assert_eq!(BaselineRef::of(b"hello").len, 5);
        assert_eq!(
            BaselineRef::of(b"hello").blob.hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        // The storage id is neither the name nor a manifest's id for the same bytes.
        assert_ne!(name.storage_id().as_bytes(), &name.0);
        assert_ne!(
            name.storage_id(),
            crate::format::manifest::ManifestName(name.0).storage_id()
        );
    }

    #[test]
    fn signatures_bind_namespace_name_blob_and_length() {
        let name = BaselineName([7; 32]);
        let key = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        let reader = Trust::new(&[key.public().clone()], None, "pr-1");
        let signed = encode(&sample(), "main", &name, Some(&key));
        assert_eq!(signed.len(), 44 + 72);
        assert_eq!(decode(&signed, "main", &name, &reader), Ok(sample()));
        assert_eq!(
            decode(&signed, "release", &name, &reader),
            Err(EntryRejection::BadSignature)
        );
        assert_eq!(
            decode(&signed, "main", &BaselineName([8; 32]), &reader),
            Err(EntryRejection::BadSignature)
        );
        // Another blob, length or key id under the signature: refused (a length over the
        // limit before the signature is even checked).
        for (at, why) in [
            (4, EntryRejection::BadSignature),
            (35, EntryRejection::BadSignature),
            (36, EntryRejection::BadSignature),
            (43, EntryRejection::Malformed),
            (44, EntryRejection::UntrustedKey),
            (60, EntryRejection::BadSignature),
            (115, EntryRejection::BadSignature),
        ] {
            let mut flipped = signed.clone();
            flipped[at] ^= 1;
            assert_eq!(
                decode(&flipped, "main", &name, &reader),
                Err(why),
                "byte {at}"
            );
        }
        let unsigned = encode(&sample(), "main", &name, None);
        assert_eq!(
            decode(&unsigned, "main", &name, &reader),
            Err(EntryRejection::Unsigned)
        );
        // A pull request reads its own unsigned baselines, nobody else's.
        assert_eq!(
            decode(
                &encode(&sample(), "pr-1", &name, None),
                "pr-1",
                &name,
                &reader
            ),
            Ok(sample())
        );
        let foreign = encode(&sample(), "main", &name, Some(&other));
        assert_eq!(
            decode(&foreign, "main", &name, &reader),
            Err(EntryRejection::UntrustedKey)
        );
        // The main job, holding the key, never takes an unsigned header.
        let main = Trust::new(&[], Some(&key), "main");
        assert_eq!(
            decode(&unsigned, "main", &name, &main),
            Err(EntryRejection::Unsigned)
        );
    }

    #[test]
    fn malformed_oversized_and_other_versions() {
        let name = BaselineName([7; 32]);
        let open = Trust::new(&[], None, "main");
        let b = encode(&sample(), "main", &name, None);
        for bad in [&b[..b.len() - 1], &b[..5], b"sgb1", b"nope", b""] {
            assert_eq!(
                decode(bad, "main", &name, &open),
                Err(EntryRejection::Malformed),
                "{bad:?}"
            );
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(
            decode(&long, "main", &name, &open),
            Err(EntryRejection::Malformed)
        );
        let mut huge = b.clone();
        huge[36..44].copy_from_slice(&(MAX_BLOB + 1).to_le_bytes());
        assert_eq!(
            decode(&huge, "main", &name, &open),
            Err(EntryRejection::Malformed)
        );
        assert_eq!(
            decode(b"sgb2 whatever", "main", &name, &open),
            Err(EntryRejection::OtherVersion)
        );
    }
}
