//! Byte formats on the remote: action entries (`ac/`), the object header (`cas/`), the
//! HMAC signature and namespace encoding. `docs/remote.md` documents them byte for byte;
//! the golden tests below pin them.
//!
//! Action entry, one ASCII line (66–230 bytes):
//!
//! ```text
//! sgc1 <output id: 64 lowercase hex> <size: decimal u64> <time: decimal i64 ns>[ <hmac: 64 hex>]\n
//! ```
//!
//! Build manifest (stored like an action entry, under a pseudo action id): `sgm2`, then one
//! 80-byte record per action — action id (32), output id (32), size (u64 LE), time (i64 LE
//! ns) — then, when written with a signing key, a 32-byte HMAC-SHA-256 over
//! `"sgcache-manifest-v2\0" ‖ namespace ‖ "\0" ‖ manifest name (32) ‖ records`. A record is
//! an action entry by another name, so it is trusted exactly like one: from the namespace it
//! was read from, and with a signing key only under a valid tag.
//!
//! Object header (framed layout only), 4 bytes before the body: `S` `G` `C` then the codec
//! byte, `0x00` = raw bytes follow, `0x01` = one or more zstd frames follow. Every framed
//! object carries it, so a raw object that happens to start with the zstd magic is stored as
//! `SGC\0` + its bytes and cannot be mistaken for a compressed one.

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// An action entry as stored under `ac/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteEntry {
    /// SHA-256 of the output.
    pub output_id: [u8; 32],
    /// Output size in bytes.
    pub size: u64,
    /// When the entry was created, Unix nanoseconds.
    pub time_nanos: i64,
}

const ENTRY_TAG: &str = "sgc1";
/// Longest entry we accept (a signed one is 164 bytes with a 20-digit size).
pub(crate) const MAX_ENTRY: usize = 512;

/// Object header magic.
pub const OBJECT_MAGIC: [u8; 3] = *b"SGC";
/// Codec byte: raw bytes follow.
pub const CODEC_RAW: u8 = 0;
/// Codec byte: zstd frames follow.
pub const CODEC_ZSTD: u8 = 1;

type HmacSha256 = hmac::Hmac<Sha256>;

fn mac_input(mac: &mut HmacSha256, namespace: &str, action: &[u8; 32], e: &RemoteEntry) {
    mac.update(b"sgcache-ac-v1\0");
    mac.update(namespace.as_bytes());
    mac.update(b"\0");
    mac.update(action);
    mac.update(&e.output_id);
    mac.update(&e.size.to_be_bytes());
    mac.update(&e.time_nanos.to_be_bytes());
}

/// HMAC-SHA-256 over (namespace, action id, output id, size, time).
pub fn sign(key: &[u8], namespace: &str, action: &[u8; 32], e: &RemoteEntry) -> [u8; 32] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac_input(&mut mac, namespace, action, e);
    mac.finalize().into_bytes().into()
}

fn verify(key: &[u8], namespace: &str, action: &[u8; 32], e: &RemoteEntry, tag: &[u8; 32]) -> bool {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac_input(&mut mac, namespace, action, e);
    mac.verify_slice(tag).is_ok()
}

/// Encode an entry; signed when `key` is given.
pub fn encode_entry(
    e: &RemoteEntry,
    namespace: &str,
    action: &[u8; 32],
    key: Option<&[u8]>,
) -> Vec<u8> {
    let mut s = format!(
        "{ENTRY_TAG} {} {} {}",
        hex::encode(e.output_id),
        e.size,
        e.time_nanos
    );
    if let Some(k) = key {
        s.push(' ');
        s.push_str(&hex::encode(sign(k, namespace, action, e)));
    }
    s.push('\n');
    s.into_bytes()
}

/// Why a stored entry was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryRejection {
    /// Not a well-formed entry.
    Malformed,
    /// A key is configured and the entry carries no signature.
    Unsigned,
    /// The signature does not verify with our key (another key, another namespace, or tampering).
    BadSignature,
}

/// Decode and (when `key` is set) verify an entry read from `namespace`.
pub fn decode_entry(
    bytes: &[u8],
    namespace: &str,
    action: &[u8; 32],
    key: Option<&[u8]>,
) -> Result<RemoteEntry, EntryRejection> {
    let s = std::str::from_utf8(bytes).map_err(|_| EntryRejection::Malformed)?;
    let s = s.strip_suffix('\n').ok_or(EntryRejection::Malformed)?;
    let mut it = s.split(' ');
    if it.next() != Some(ENTRY_TAG) {
        return Err(EntryRejection::Malformed);
    }
    let out = it
        .next()
        .and_then(parse_hex32)
        .ok_or(EntryRejection::Malformed)?;
    let size = it
        .next()
        .and_then(parse_dec::<u64>)
        .ok_or(EntryRejection::Malformed)?;
    let time = it
        .next()
        .and_then(parse_dec::<i64>)
        .ok_or(EntryRejection::Malformed)?;
    let tag = match it.next() {
        None => None,
        Some(t) => Some(parse_hex32(t).ok_or(EntryRejection::Malformed)?),
    };
    if it.next().is_some() {
        return Err(EntryRejection::Malformed);
    }
    let e = RemoteEntry {
        output_id: out,
        size,
        time_nanos: time,
    };
    if let Some(k) = key {
        let tag = tag.ok_or(EntryRejection::Unsigned)?;
        if !verify(k, namespace, action, &e, &tag) {
            return Err(EntryRejection::BadSignature);
        }
    }
    Ok(e)
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

fn parse_dec<T: std::str::FromStr>(s: &str) -> Option<T> {
    // Canonical decimal only: no sign on sizes, no leading zeros, no `+`.
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Encode a namespace as one key segment: `[A-Za-z0-9_-]` and non-leading `.` stay, every
/// other byte becomes `~XX` (uppercase hex). Injective, so two namespaces never share keys;
/// `feature/x` becomes `feature~2Fx`.
pub fn encode_namespace(ns: &str) -> String {
    let mut out = String::with_capacity(ns.len());
    for (i, b) in ns.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

/// The plain-layout action key for a namespace: the action id itself for `default`,
/// otherwise SHA-256("sgcache-ns-v1\0" ‖ namespace ‖ "\0" ‖ action id), so namespaces stay
/// apart while keys keep the `ac/<64 hex>` shape plain HTTP caches require.
pub fn plain_action_key(ns: &str, action: &[u8; 32]) -> [u8; 32] {
    if ns == "default" {
        return *action;
    }
    let mut h = Sha256::new();
    h.update(b"sgcache-ns-v1\0");
    h.update(ns.as_bytes());
    h.update(b"\0");
    h.update(action);
    h.finalize().into()
}

/// Verifies a downloaded object as it is written to the caller's sink: never more than
/// `size` bytes pass, and at the end length and SHA-256 must match.
pub(crate) struct Verifier<'s> {
    sink: &'s mut (dyn std::io::Write + Send),
    /// `None` when the sink checks the hash itself.
    hasher: Option<Sha256>,
    written: u64,
    size: u64,
    overflow: bool,
    sink_error: Option<std::io::Error>,
}

impl<'s> Verifier<'s> {
    pub(crate) fn new(
        sink: &'s mut (dyn std::io::Write + Send),
        size: u64,
        hash: bool,
    ) -> Verifier<'s> {
        Verifier {
            sink,
            hasher: hash.then(Sha256::new),
            written: 0,
            size,
            overflow: false,
            sink_error: None,
        }
    }
}

impl std::io::Write for Verifier<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() as u64 > self.size {
            self.overflow = true;
            return Err(std::io::Error::other(
                "object longer than its recorded size",
            ));
        }
        if let Err(e) = self.sink.write_all(buf) {
            let again = std::io::Error::new(e.kind(), e.to_string());
            self.sink_error = Some(e);
            return Err(again);
        }
        if let Some(h) = &mut self.hasher {
            h.update(buf);
        }
        self.written += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.sink.flush()
    }
}

enum DecState<'s> {
    Header(Vec<u8>, Option<Verifier<'s>>),
    Raw(Verifier<'s>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Verifier<'s>>>),
    Done,
}

/// Streams a stored object (framed or plain) through decompression and verification.
pub(crate) struct ObjectDecoder<'s> {
    state: DecState<'s>,
    key: String,
}

impl<'s> ObjectDecoder<'s> {
    pub(crate) fn new(framed: bool, v: Verifier<'s>, key: &str) -> ObjectDecoder<'s> {
        let state = if framed {
            DecState::Header(Vec::with_capacity(4), Some(v))
        } else {
            DecState::Raw(v)
        };
        ObjectDecoder {
            state,
            key: key.to_string(),
        }
    }

    fn io_fail(
        &self,
        v_err: Option<std::io::Error>,
        overflow: bool,
        e: std::io::Error,
    ) -> StoreError {
        if let Some(se) = v_err {
            return StoreError::Sink {
                key: self.key.clone(),
                source: se,
            };
        }
        if overflow {
            return StoreError::corrupt("object", &self.key, "longer than its recorded size");
        }
        StoreError::corrupt("object", &self.key, format!("undecodable: {e}"))
    }

    pub(crate) fn push(&mut self, mut chunk: &[u8]) -> Result<(), StoreError> {
        use std::io::Write;
        loop {
            match &mut self.state {
                DecState::Header(buf, v) => {
                    let need = 4 - buf.len();
                    let take = need.min(chunk.len());
                    buf.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    if buf.len() < 4 {
                        return Ok(());
                    }
                    if buf[..3] != OBJECT_MAGIC {
                        return Err(StoreError::corrupt(
                            "object",
                            &self.key,
                            "missing sgcache object header",
                        ));
                    }
                    let v = v.take().expect("verifier present until header parsed");
                    self.state = match buf[3] {
                        CODEC_RAW => DecState::Raw(v),
                        CODEC_ZSTD => match zstd::stream::write::Decoder::new(v) {
                            Ok(d) => DecState::Zstd(Box::new(d)),
                            Err(e) => {
                                return Err(StoreError::corrupt(
                                    "object",
                                    &self.key,
                                    format!("zstd: {e}"),
                                ));
                            }
                        },
                        c => {
                            return Err(StoreError::corrupt(
                                "object",
                                &self.key,
                                format!("unknown codec byte {c:#04x}"),
                            ));
                        }
                    };
                }
                DecState::Raw(v) => {
                    if let Err(e) = v.write_all(chunk) {
                        let (se, of) = (v.sink_error.take(), v.overflow);
                        return Err(self.io_fail(se, of, e));
                    }
                    return Ok(());
                }
                DecState::Zstd(d) => {
                    if let Err(e) = d.write_all(chunk) {
                        let v = d.get_mut();
                        let (se, of) = (v.sink_error.take(), v.overflow);
                        return Err(self.io_fail(se, of, e));
                    }
                    return Ok(());
                }
                DecState::Done => return Ok(()),
            }
        }
    }

    /// Finish: returns the number of bytes written after checking size and hash.
    pub(crate) fn finish(mut self, output_id: &[u8; 32]) -> Result<u64, StoreError> {
        use std::io::Write;
        let v = match std::mem::replace(&mut self.state, DecState::Done) {
            DecState::Header(..) => {
                return Err(StoreError::corrupt(
                    "object",
                    &self.key,
                    "shorter than its header",
                ));
            }
            DecState::Raw(v) => v,
            DecState::Zstd(mut d) => {
                if let Err(e) = d.flush() {
                    let v = d.get_mut();
                    let (se, of) = (v.sink_error.take(), v.overflow);
                    return Err(self.io_fail(se, of, e));
                }
                d.into_inner()
            }
            DecState::Done => unreachable!("finish is called once"),
        };
        if v.written != v.size {
            return Err(StoreError::corrupt(
                "object",
                &self.key,
                format!("{} bytes, expected {}", v.written, v.size),
            ));
        }
        if let Some(h) = v.hasher {
            let got: [u8; 32] = h.finalize().into();
            if &got != output_id {
                return Err(StoreError::corrupt(
                    "object",
                    &self.key,
                    format!("SHA-256 is {}, not the output id", hex::encode(got)),
                ));
            }
        }
        Ok(v.written)
    }
}

/// First bytes of a manifest.
pub const MANIFEST_MAGIC: &[u8; 4] = b"sgm2";
/// Bytes per manifest record.
pub const MANIFEST_RECORD: usize = 80;
/// Most records a manifest holds.
pub const MANIFEST_MAX: usize = 50_000;

/// One manifest record: an action and its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestRecord {
    /// The action id.
    pub action: [u8; 32],
    /// What the action produced.
    pub entry: RemoteEntry,
}

fn manifest_mac(key: &[u8], namespace: &str, name: &[u8; 32], records: &[u8]) -> HmacSha256 {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"sgcache-manifest-v2\0");
    mac.update(namespace.as_bytes());
    mac.update(b"\0");
    mac.update(name);
    mac.update(records);
    mac
}

/// Encode a manifest (at most [`MANIFEST_MAX`] records); signed when `key` is given.
pub fn encode_manifest(
    records: &[ManifestRecord],
    namespace: &str,
    name: &[u8; 32],
    key: Option<&[u8]>,
) -> Vec<u8> {
    let records = &records[..records.len().min(MANIFEST_MAX)];
    let mut b = Vec::with_capacity(4 + MANIFEST_RECORD * records.len() + 32);
    b.extend_from_slice(MANIFEST_MAGIC);
    for r in records {
        b.extend_from_slice(&r.action);
        b.extend_from_slice(&r.entry.output_id);
        b.extend_from_slice(&r.entry.size.to_le_bytes());
        b.extend_from_slice(&r.entry.time_nanos.to_le_bytes());
    }
    if let Some(k) = key {
        let tag = manifest_mac(k, namespace, name, &b[4..])
            .finalize()
            .into_bytes();
        b.extend_from_slice(&tag);
    }
    b
}

/// Decode and (when `key` is set) verify a manifest read from `namespace`.
pub fn decode_manifest(
    bytes: &[u8],
    namespace: &str,
    name: &[u8; 32],
    key: Option<&[u8]>,
) -> Result<Vec<ManifestRecord>, EntryRejection> {
    let rest = bytes
        .strip_prefix(MANIFEST_MAGIC.as_slice())
        .ok_or(EntryRejection::Malformed)?;
    let (records, tag) = match rest.len() % MANIFEST_RECORD {
        0 => (rest, None),
        32 => {
            let (r, t) = rest.split_at(rest.len() - 32);
            (r, Some(t))
        }
        _ => return Err(EntryRejection::Malformed),
    };
    if records.len() / MANIFEST_RECORD > MANIFEST_MAX {
        return Err(EntryRejection::Malformed);
    }
    if let Some(k) = key {
        let tag = tag.ok_or(EntryRejection::Unsigned)?;
        if manifest_mac(k, namespace, name, records)
            .verify_slice(tag)
            .is_err()
        {
            return Err(EntryRejection::BadSignature);
        }
    }
    Ok(records
        .chunks_exact(MANIFEST_RECORD)
        .map(|c| {
            let word = |i: usize| -> [u8; 8] { c[i..i + 8].try_into().expect("8 bytes") };
            ManifestRecord {
                action: c[..32].try_into().expect("32 bytes"),
                entry: RemoteEntry {
                    output_id: c[32..64].try_into().expect("32 bytes"),
                    size: u64::from_le_bytes(word(64)),
                    time_nanos: i64::from_le_bytes(word(72)),
                },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [0xaa; 32];
    const O: [u8; 32] = [0x01; 32];

    #[test]
    fn entry_golden_unsigned() {
        let e = RemoteEntry {
            output_id: O,
            size: 42,
            time_nanos: 1_700_000_000_000_000_000,
        };
        let b = encode_entry(&e, "default", &A, None);
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            "sgc1 0101010101010101010101010101010101010101010101010101010101010101 42 1700000000000000000\n"
        );
        assert_eq!(decode_entry(&b, "default", &A, None), Ok(e));
    }

    #[test]
    fn manifest_golden_signed_and_rejections() {
        let r = ManifestRecord {
            action: A,
            entry: RemoteEntry {
                output_id: O,
                size: 0x0102,
                time_nanos: -2,
            },
        };
        let name = [7u8; 32];
        let b = encode_manifest(&[r, r], "main", &name, None);
        assert_eq!(b.len(), 4 + 160);
        assert_eq!(&b[..4], b"sgm2");
        assert_eq!(&b[4..36], &A);
        assert_eq!(&b[36..68], &O);
        assert_eq!(&b[68..76], &[2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            &b[76..84],
            &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(decode_manifest(&b, "main", &name, None), Ok(vec![r, r]));
        // A key-holding reader refuses it unsigned.
        assert_eq!(
            decode_manifest(&b, "main", &name, Some(b"k")),
            Err(EntryRejection::Unsigned)
        );
        let signed = encode_manifest(&[r], "main", &name, Some(b"k"));
        assert_eq!(signed.len(), 4 + 80 + 32);
        assert_eq!(
            decode_manifest(&signed, "main", &name, Some(b"k")),
            Ok(vec![r])
        );
        // Without a key the tag is not needed, but the records still decode.
        assert_eq!(decode_manifest(&signed, "main", &name, None), Ok(vec![r]));
        for (ns, nm, k) in [
            ("pr-1", name, b"k".as_slice()),
            ("main", [8u8; 32], b"k".as_slice()),
            ("main", name, b"other".as_slice()),
        ] {
            assert_eq!(
                decode_manifest(&signed, ns, &nm, Some(k)),
                Err(EntryRejection::BadSignature)
            );
        }
        let mut flipped = signed.clone();
        flipped[40] ^= 1;
        assert_eq!(
            decode_manifest(&flipped, "main", &name, Some(b"k")),
            Err(EntryRejection::BadSignature)
        );
        assert_eq!(
            decode_manifest(&signed[..signed.len() - 1], "main", &name, None),
            Err(EntryRejection::Malformed)
        );
        assert_eq!(
            decode_manifest(b"sgm1", "main", &name, None),
            Err(EntryRejection::Malformed)
        );
        assert_eq!(decode_manifest(b"sgm2", "main", &name, None), Ok(vec![]));
    }

    #[test]
    fn entry_signed_roundtrip_and_rejections() {
        let e = RemoteEntry {
            output_id: O,
            size: 0,
            time_nanos: -5,
        };
        let b = encode_entry(&e, "main", &A, Some(b"k1"));
        assert_eq!(decode_entry(&b, "main", &A, Some(b"k1")), Ok(e));
        // No key: signed entries still readable.
        assert_eq!(decode_entry(&b, "main", &A, None), Ok(e));
        assert_eq!(
            decode_entry(&b, "main", &A, Some(b"k2")),
            Err(EntryRejection::BadSignature)
        );
        assert_eq!(
            decode_entry(&b, "pr-1", &A, Some(b"k1")),
            Err(EntryRejection::BadSignature)
        );
        assert_eq!(
            decode_entry(&b, "main", &[0; 32], Some(b"k1")),
            Err(EntryRejection::BadSignature)
        );
        let unsigned = encode_entry(&e, "main", &A, None);
        assert_eq!(
            decode_entry(&unsigned, "main", &A, Some(b"k1")),
            Err(EntryRejection::Unsigned)
        );
    }

    #[test]
    fn entry_malformed() {
        for bad in [
            &b""[..],
            b"sgc1\n",
            b"sgc2 0101010101010101010101010101010101010101010101010101010101010101 1 1\n",
            b"sgc1 0101010101010101010101010101010101010101010101010101010101010101 01 1\n",
            b"sgc1 0101010101010101010101010101010101010101010101010101010101010101 -1 1\n",
            b"sgc1 0101010101010101010101010101010101010101010101010101010101010101 1 1",
            b"sgc1 0101010101010101010101010101010101010101010101010101010101010101 1 1 x\n",
        ] {
            assert_eq!(
                decode_entry(bad, "d", &A, None),
                Err(EntryRejection::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn namespace_encoding() {
        assert_eq!(encode_namespace("main"), "main");
        assert_eq!(encode_namespace("feature/x"), "feature~2Fx");
        assert_eq!(encode_namespace(".."), "~2E.");
        assert_eq!(encode_namespace("a~b"), "a~7Eb");
    }

    fn decode(
        framed: bool,
        stored: &[u8],
        size: u64,
        id: &[u8; 32],
        chunk: usize,
    ) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        let mut sink: &mut (dyn std::io::Write + Send) = &mut out;
        let mut d = ObjectDecoder::new(framed, Verifier::new(&mut sink, size, true), "cas/x");
        for c in stored.chunks(chunk.max(1)) {
            d.push(c)?;
        }
        d.finish(id)?;
        Ok(out)
    }

    #[test]
    fn raw_object_starting_with_zstd_magic_roundtrips() {
        let body = zstd::encode_all(&b"hello"[..], 1).unwrap(); // a real zstd frame, stored raw
        let id: [u8; 32] = Sha256::digest(&body).into();
        let mut stored = b"SGC\0".to_vec();
        stored.extend_from_slice(&body);
        for chunk in [1, 3, 1000] {
            assert_eq!(
                decode(true, &stored, body.len() as u64, &id, chunk).unwrap(),
                body
            );
        }
    }

    #[test]
    fn zstd_object_and_corruptions() {
        let body = vec![7u8; 100_000];
        let id: [u8; 32] = Sha256::digest(&body).into();
        let mut stored = b"SGC\x01".to_vec();
        stored.extend_from_slice(&zstd::encode_all(&body[..], 3).unwrap());
        assert_eq!(decode(true, &stored, 100_000, &id, 7).unwrap(), body);
        // Wrong size recorded: both directions.
        assert!(matches!(
            decode(true, &stored, 99_999, &id, 4096),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            decode(true, &stored, 100_001, &id, 4096),
            Err(StoreError::Corrupt { .. })
        ));
        // Wrong hash.
        assert!(matches!(
            decode(true, &stored, 100_000, &[0; 32], 4096),
            Err(StoreError::Corrupt { .. })
        ));
        // Unknown codec, missing header.
        assert!(matches!(
            decode(true, b"SGC\x09abc", 3, &id, 4096),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            decode(true, b"SG", 0, &id, 4096),
            Err(StoreError::Corrupt { .. })
        ));
        // Plain layout: bytes as they are.
        let hid: [u8; 32] = Sha256::digest(b"SGC\x01").into();
        assert_eq!(decode(false, b"SGC\x01", 4, &hid, 1).unwrap(), b"SGC\x01");
    }
}
