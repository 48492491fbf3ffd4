//! The build manifest: what a build context used, and the packs holding those outputs.
//!
//! Stored like an action entry (under a pseudo action id derived from the manifest name, in
//! the writer's namespace):
//!
//! | field | bytes | content |
//! |---|---|---|
//! | magic | 4 | `sgm4` |
//! | record count n | 4 | u32 LE, n ≤ [`MAX_RECORDS`] |
//! | records | 80 × n | most recently used first; action id (32), output id (32), size (u64 LE), time (i64 LE ns) |
//! | pack count m | 4 | u32 LE, m ≤ [`MAX_PACKS`] |
//! | packs | 40 × m | pack id (32: SHA-256 of the pack, its `cas/` key), pack length (u64 LE, uncompressed) |
//! | miss count k | 4 | u32 LE, k ≤ [`MAX_MISSES`] |
//! | misses | 32 × k | action ids the context's builds ask for and never store (the go command misses them too) |
//! | signature | 0 or 72 | key id (8), Ed25519 signature (64) over `"sgcache-manifest-v4\0" ‖ namespace ‖ "\0" ‖ manifest name (32) ‖ key id (8) ‖` every byte between the magic and the signature |
//!
//! A record says what an action entry says, so a manifest is trusted exactly like one
//! ([`crate::keys::Trust`]), as a whole. Other versions (`sgm2`, `sgm3`) are
//! [`EntryRejection::OtherVersion`].

use sgcache_types::{ActionId, IndexEntry, OutputId};
use sha2::{Digest, Sha256};

use super::{EntryRejection, array};
use crate::keys::{KeyId, SecretKey, Signature, Trust};

/// First bytes of a manifest.
pub const MAGIC: &[u8; 4] = b"sgm4";
/// Bytes per record.
pub const RECORD: usize = 80;
/// Bytes per pack reference.
const PACK: usize = 40;
/// Bytes of a signature trailer.
const SIGNATURE: usize = 8 + 64;
/// Most records a manifest holds.
pub const MAX_RECORDS: usize = 50_000;
/// Most packs a manifest lists.
pub const MAX_PACKS: usize = 10_000;
/// Most never-stored keys a manifest lists.
pub const MAX_MISSES: usize = 4_096;
/// The longest manifest.
pub const MAX_BYTES: usize =
    4 + 4 + RECORD * MAX_RECORDS + 4 + PACK * MAX_PACKS + 4 + 32 * MAX_MISSES + SIGNATURE;

/// The name of a build context's manifest (a 32-byte hash of what identifies the context).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManifestName(pub [u8; 32]);

impl std::fmt::Debug for ManifestName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ManifestName({}…)", hex::encode(&self.0[..6]))
    }
}

impl ManifestName {
    /// The pseudo action id the manifest is stored under (in `ac/`, so it gets the namespace
    /// and plain-layout key mapping of action entries; no real action id collides with it).
    pub fn storage_id(&self) -> ActionId {
        let mut h = Sha256::new();
        h.update(b"sgcache manifest v2\0");
        h.update(self.0);
        ActionId::from_bytes(h.finalize().into())
    }
}

/// A pack a manifest lists: its id (the SHA-256 of its bytes, its `cas/` key: a pack is an
/// object like any other) and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackRef {
    /// The pack's id.
    pub id: OutputId,
    /// The pack's length in bytes (uncompressed).
    pub len: u64,
}

/// A decoded manifest: records, most recent first, and the packs holding their outputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The actions a build context used, with what they produced.
    pub records: Vec<IndexEntry>,
    /// Packs of the records' outputs, in record order.
    pub packs: Vec<PackRef>,
    /// Action ids the context's builds asked for and never stored (the go command misses
    /// them too): a reader need not ask the remote for them.
    pub misses: Vec<ActionId>,
}

fn signed_message(namespace: &str, name: &ManifestName, key: KeyId, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(20 + namespace.len() + 1 + 40 + body.len());
    m.extend_from_slice(b"sgcache-manifest-v4\0");
    m.extend_from_slice(namespace.as_bytes());
    m.push(0);
    m.extend_from_slice(&name.0);
    m.extend_from_slice(&key.0);
    m.extend_from_slice(body);
    m
}

/// Encodes `m` (at most [`MAX_RECORDS`] records, [`MAX_PACKS`] packs and [`MAX_MISSES`]
/// misses; the rest are cut)
/// for `namespace`; signed when `signer` is given.
pub fn encode(
    m: &Manifest,
    namespace: &str,
    name: &ManifestName,
    signer: Option<&SecretKey>,
) -> Vec<u8> {
    let records = &m.records[..m.records.len().min(MAX_RECORDS)];
    let packs = &m.packs[..m.packs.len().min(MAX_PACKS)];
    let mut b = Vec::with_capacity(12 + RECORD * records.len() + PACK * packs.len() + SIGNATURE);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        b.extend_from_slice(r.action.as_bytes());
        b.extend_from_slice(r.output.as_bytes());
        b.extend_from_slice(&r.size.to_le_bytes());
        b.extend_from_slice(&r.time_nanos.to_le_bytes());
    }
    b.extend_from_slice(&(packs.len() as u32).to_le_bytes());
    for p in packs {
        b.extend_from_slice(p.id.as_bytes());
        b.extend_from_slice(&p.len.to_le_bytes());
    }
    let misses = &m.misses[..m.misses.len().min(MAX_MISSES)];
    b.extend_from_slice(&(misses.len() as u32).to_le_bytes());
    for a in misses {
        b.extend_from_slice(a.as_bytes());
    }
    if let Some(k) = signer {
        let sig = k.sign(|id| signed_message(namespace, name, id, &b[4..]));
        b.extend_from_slice(&sig.key.0);
        b.extend_from_slice(&sig.bytes);
    }
    b
}

/// Decodes a manifest read from `namespace` and applies `trust`.
pub fn decode(
    bytes: &[u8],
    namespace: &str,
    name: &ManifestName,
    trust: &Trust,
) -> Result<Manifest, EntryRejection> {
    let rest = match bytes.strip_prefix(MAGIC.as_slice()) {
        Some(r) => r,
        None if bytes.len() >= 4 && bytes.starts_with(b"sgm") => {
            return Err(EntryRejection::OtherVersion);
        }
        None => return Err(EntryRejection::Malformed),
    };
    let count = |at: usize| -> Result<usize, EntryRejection> {
        let b = rest.get(at..at + 4).ok_or(EntryRejection::Malformed)?;
        Ok(u32::from_le_bytes(array(b, 0)) as usize)
    };
    let n = count(0)?;
    if n > MAX_RECORDS {
        return Err(EntryRejection::Malformed);
    }
    let packs_at = 4 + n * RECORD;
    let m = count(packs_at)?;
    if m > MAX_PACKS {
        return Err(EntryRejection::Malformed);
    }
    let misses_at = packs_at + 4 + m * PACK;
    let k = count(misses_at)?;
    if k > MAX_MISSES {
        return Err(EntryRejection::Malformed);
    }
    let body_len = misses_at + 4 + k * 32;
    let sig = match rest.len().checked_sub(body_len) {
        Some(0) => None,
        Some(SIGNATURE) => {
            let t = &rest[body_len..];
            Some(Signature {
                key: KeyId(array(t, 0)),
                bytes: array(t, 8),
            })
        }
        _ => return Err(EntryRejection::Malformed),
    };
    let body = &rest[..body_len];
    trust.check(namespace, sig.as_ref(), |k| {
        signed_message(namespace, name, k, body)
    })?;
    let records = rest[4..packs_at]
        .chunks_exact(RECORD)
        .map(|c| IndexEntry {
            action: ActionId::from_bytes(array(c, 0)),
            output: OutputId::from_bytes(array(c, 32)),
            size: u64::from_le_bytes(array(c, 64)),
            time_nanos: i64::from_le_bytes(array(c, 72)),
        })
        .collect();
    let packs = rest[packs_at + 4..misses_at]
        .chunks_exact(PACK)
        .map(|c| PackRef {
            id: OutputId::from_bytes(array(c, 0)),
            len: u64::from_le_bytes(array(c, 32)),
        })
        .collect();
    let misses = rest[misses_at + 4..body_len]
        .chunks_exact(32)
        .map(|c| ActionId::from_bytes(array(c, 0)))
        .collect();
    Ok(Manifest {
        records,
        packs,
        misses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [0xaa; 32];
    const O: [u8; 32] = [0x01; 32];

    fn sample() -> Manifest {
        let r = IndexEntry {
            action: ActionId::from_bytes(A),
            output: OutputId::from_bytes(O),
            size: 0x0102,
            time_nanos: -2,
        };
        Manifest {
            records: vec![r, r],
            packs: vec![PackRef {
                id: OutputId::from_bytes([0x33; 32]),
                len: 0x0a0b,
            }],
            misses: vec![ActionId::from_bytes([0x44; 32])],
        }
    }

    #[test]
    fn golden_layout() {
        let name = ManifestName([7; 32]);
        let open = Trust::new(&[], None, "main");
        let b = encode(&sample(), "main", &name, None);
        assert_eq!(b.len(), 4 + 4 + 160 + 4 + 40 + 4 + 32);
        assert_eq!(&b[..4], b"sgm4");
        assert_eq!(&b[4..8], &[2, 0, 0, 0]);
        assert_eq!(&b[8..40], &A);
        assert_eq!(&b[40..72], &O);
        assert_eq!(&b[72..80], &[2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            &b[80..88],
            &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(&b[168..172], &[1, 0, 0, 0]);
        assert_eq!(&b[172..204], &[0x33; 32]);
        assert_eq!(&b[204..212], &[0x0b, 0x0a, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[212..216], &[1, 0, 0, 0]);
        assert_eq!(&b[216..248], &[0x44; 32]);
        assert_eq!(decode(&b, "main", &name, &open), Ok(sample()));
        let empty = encode(&Manifest::default(), "main", &name, None);
        assert_eq!(
            decode(&empty, "main", &name, &open),
            Ok(Manifest::default())
        );
    }

    #[test]
    fn signatures_bind_namespace_name_and_every_byte() {
        let name = ManifestName([7; 32]);
        let key = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        let reader = Trust::new(&[key.public().clone()], None, "pr-1");
        let signed = encode(&sample(), "main", &name, Some(&key));
        assert_eq!(signed.len(), 4 + 4 + 160 + 4 + 40 + 4 + 32 + 72);
        assert_eq!(decode(&signed, "main", &name, &reader), Ok(sample()));
        assert_eq!(
            decode(&signed, "release", &name, &reader),
            Err(EntryRejection::BadSignature)
        );
        assert_eq!(
            decode(&signed, "main", &ManifestName([8; 32]), &reader),
            Err(EntryRejection::BadSignature)
        );
        for at in [40, 100, 180, 230] {
            let mut flipped = signed.clone();
            flipped[at] ^= 1;
            assert_eq!(
                decode(&flipped, "main", &name, &reader),
                Err(EntryRejection::BadSignature),
                "byte {at}"
            );
        }
        let unsigned = encode(&sample(), "main", &name, None);
        assert_eq!(
            decode(&unsigned, "main", &name, &reader),
            Err(EntryRejection::Unsigned)
        );
        let foreign = encode(&sample(), "main", &name, Some(&other));
        assert_eq!(
            decode(&foreign, "main", &name, &reader),
            Err(EntryRejection::UntrustedKey)
        );
    }

    #[test]
    fn malformed_and_other_versions() {
        let name = ManifestName([7; 32]);
        let open = Trust::new(&[], None, "main");
        let b = encode(&sample(), "main", &name, None);
        for bad in [&b[..b.len() - 1], &b[..7], b"sgm4", b"nope", b""] {
            assert_eq!(
                decode(bad, "main", &name, &open),
                Err(EntryRejection::Malformed),
                "{bad:?}"
            );
        }
        let mut long = b.clone();
        long[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode(&long, "main", &name, &open),
            Err(EntryRejection::Malformed)
        );
        for old in [&b"sgm3\0\0\0\0\0\0\0\0"[..], b"sgm2"] {
            assert_eq!(
                decode(old, "main", &name, &open),
                Err(EntryRejection::OtherVersion)
            );
        }
    }
}
