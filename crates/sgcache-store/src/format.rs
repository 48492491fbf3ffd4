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
//! Build manifest (stored like an action entry, under a pseudo action id): `sgm3`, the
//! record count (u32 LE), one 80-byte record per action — action id (32), output id (32),
//! size (u64 LE), time (i64 LE ns) — the pack count (u32 LE), one 40-byte reference per pack
//! — pack id (32), pack length (u64 LE) — then, when written with a signing key, a 32-byte
//! HMAC-SHA-256 over `"sgcache-manifest-v3\0" ‖ namespace ‖ "\0" ‖ manifest name (32) ‖`
//! everything between the magic and the tag. A record is an action entry by another name, so
//! it is trusted exactly like one: from the namespace it was read from, and with a signing
//! key only under a valid tag. (`sgm2` manifests, records only with the tag over
//! `"sgcache-manifest-v2\0" ‖ namespace ‖ "\0" ‖ name ‖ records`, are still read.)
//!
//! Pack (an object under `cas/<SHA-256 of the pack>`, framed and compressed like any object):
//! `sgp1`, the object count (u32 LE), per object its output id (32) and size (u64 LE), then
//! the objects' bytes back to back in that order. A pack needs no trust: each object in it is
//! verified against its own output id, and only objects a trusted record names are kept.
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
pub const MANIFEST_MAGIC: &[u8; 4] = b"sgm3";
/// First bytes of a manifest of the previous version (records only), still read.
const MANIFEST_MAGIC_V2: &[u8; 4] = b"sgm2";
/// Bytes per manifest record.
pub const MANIFEST_RECORD: usize = 80;
/// Bytes per pack reference in a manifest.
const MANIFEST_PACK: usize = 40;
/// Most records a manifest holds.
pub const MANIFEST_MAX: usize = 50_000;
/// Most packs a manifest lists.
pub const MANIFEST_MAX_PACKS: usize = 10_000;
/// The longest manifest.
pub const MANIFEST_MAX_BYTES: usize =
    4 + 4 + MANIFEST_RECORD * MANIFEST_MAX + 4 + MANIFEST_PACK * MANIFEST_MAX_PACKS + 32;

/// One manifest record: an action and its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestRecord {
    /// The action id.
    pub action: [u8; 32],
    /// What the action produced.
    pub entry: RemoteEntry,
}

/// A pack a manifest lists: its id (the SHA-256 of its bytes, its `cas/` key) and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackRef {
    /// The pack's id.
    pub id: [u8; 32],
    /// The pack's length in bytes (uncompressed).
    pub len: u64,
}

/// A decoded manifest: records, most recent first, and the packs holding their outputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The actions a build context used, with what they produced.
    pub records: Vec<ManifestRecord>,
    /// Packs of the records' outputs, in record order.
    pub packs: Vec<PackRef>,
}

fn manifest_mac(
    key: &[u8],
    version: &[u8],
    namespace: &str,
    name: &[u8; 32],
    body: &[u8],
) -> HmacSha256 {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(version);
    mac.update(namespace.as_bytes());
    mac.update(b"\0");
    mac.update(name);
    mac.update(body);
    mac
}

/// Encode a manifest (at most [`MANIFEST_MAX`] records and [`MANIFEST_MAX_PACKS`] packs);
/// signed when `key` is given.
pub fn encode_manifest(
    records: &[ManifestRecord],
    packs: &[PackRef],
    namespace: &str,
    name: &[u8; 32],
    key: Option<&[u8]>,
) -> Vec<u8> {
    let records = &records[..records.len().min(MANIFEST_MAX)];
    let packs = &packs[..packs.len().min(MANIFEST_MAX_PACKS)];
    let mut b =
        Vec::with_capacity(12 + MANIFEST_RECORD * records.len() + MANIFEST_PACK * packs.len() + 32);
    b.extend_from_slice(MANIFEST_MAGIC);
    b.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        b.extend_from_slice(&r.action);
        b.extend_from_slice(&r.entry.output_id);
        b.extend_from_slice(&r.entry.size.to_le_bytes());
        b.extend_from_slice(&r.entry.time_nanos.to_le_bytes());
    }
    b.extend_from_slice(&(packs.len() as u32).to_le_bytes());
    for p in packs {
        b.extend_from_slice(&p.id);
        b.extend_from_slice(&p.len.to_le_bytes());
    }
    if let Some(k) = key {
        let tag = manifest_mac(k, b"sgcache-manifest-v3\0", namespace, name, &b[4..])
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
) -> Result<Manifest, EntryRejection> {
    let check = |version: &[u8], body: &[u8], tag: Option<&[u8]>| match key {
        None => Ok(()),
        Some(k) => {
            let tag = tag.ok_or(EntryRejection::Unsigned)?;
            manifest_mac(k, version, namespace, name, body)
                .verify_slice(tag)
                .map_err(|_| EntryRejection::BadSignature)
        }
    };
    if let Some(rest) = bytes.strip_prefix(MANIFEST_MAGIC_V2.as_slice()) {
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
        check(b"sgcache-manifest-v2\0", records, tag)?;
        return Ok(Manifest {
            records: decode_records(records),
            packs: Vec::new(),
        });
    }
    let rest = bytes
        .strip_prefix(MANIFEST_MAGIC.as_slice())
        .ok_or(EntryRejection::Malformed)?;
    let count = |at: usize| -> Result<usize, EntryRejection> {
        let b = rest.get(at..at + 4).ok_or(EntryRejection::Malformed)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
    };
    let n = count(0)?;
    if n > MANIFEST_MAX {
        return Err(EntryRejection::Malformed);
    }
    let packs_at = 4 + n * MANIFEST_RECORD;
    let m = count(packs_at)?;
    if m > MANIFEST_MAX_PACKS {
        return Err(EntryRejection::Malformed);
    }
    let body_len = packs_at + 4 + m * MANIFEST_PACK;
    let tag = match rest.len().checked_sub(body_len) {
        Some(0) => None,
        Some(32) => Some(&rest[body_len..]),
        _ => return Err(EntryRejection::Malformed),
    };
    check(b"sgcache-manifest-v3\0", &rest[..body_len], tag)?;
    let packs = rest[packs_at + 4..body_len]
        .chunks_exact(MANIFEST_PACK)
        .map(|c| PackRef {
            id: c[..32].try_into().expect("32 bytes"),
            len: u64::from_le_bytes(c[32..40].try_into().expect("8 bytes")),
        })
        .collect();
    Ok(Manifest {
        records: decode_records(&rest[4..packs_at]),
        packs,
    })
}

fn decode_records(records: &[u8]) -> Vec<ManifestRecord> {
    records
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
        .collect()
}

/// First bytes of a pack.
pub const PACK_MAGIC: &[u8; 4] = b"sgp1";
/// Most objects in one pack.
pub const PACK_MAX_OBJECTS: usize = 100_000;

/// The header of a pack holding `objects` (output id and size each), in that order.
pub fn encode_pack_header(objects: &[([u8; 32], u64)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + 40 * objects.len());
    b.extend_from_slice(PACK_MAGIC);
    b.extend_from_slice(&(objects.len() as u32).to_le_bytes());
    for (id, size) in objects {
        b.extend_from_slice(id);
        b.extend_from_slice(&size.to_le_bytes());
    }
    b
}

/// Where [`PackSplitter`] sends the objects of a pack, one at a time.
pub trait PackTarget {
    /// The pack's header has been read: these objects follow, in this order.
    fn listed(&mut self, _objects: &[([u8; 32], u64)]) -> std::io::Result<()> {
        Ok(())
    }
    /// An object of `size` bytes claiming to be `output_id` starts; `Ok(false)` skips it.
    fn begin(&mut self, output_id: &[u8; 32], size: u64) -> std::io::Result<bool>;
    /// The next bytes of the object begun (only for a kept object).
    fn data(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// The kept object's last byte was given.
    fn end(&mut self) -> std::io::Result<()>;
}

/// Splits a pack streamed into it (as an [`std::io::Write`]) into its objects. A malformed
/// header, or bytes beyond the objects the header lists, is an error.
#[derive(Debug)]
pub struct PackSplitter<T> {
    target: T,
    header: Vec<u8>,
    /// Objects still to come, last first, once the header is read.
    objects: Option<Vec<([u8; 32], u64)>>,
    /// Bytes left of the current object, and whether it is kept.
    current: Option<(u64, bool)>,
}

impl<T: PackTarget> PackSplitter<T> {
    /// A splitter feeding `target`.
    pub fn new(target: T) -> PackSplitter<T> {
        PackSplitter {
            target,
            header: Vec::new(),
            objects: None,
            current: None,
        }
    }

    /// The target, e.g. to collect what it did.
    pub fn into_target(self) -> T {
        self.target
    }

    /// Whether every object the header lists has been given whole.
    pub fn is_complete(&self) -> bool {
        matches!(&self.objects, Some(o) if o.is_empty()) && self.current.is_none()
    }

    fn bad(why: &str) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("pack: {why}"))
    }

    /// Starts objects until one needs bytes (empty ones end at once).
    fn advance(&mut self) -> std::io::Result<()> {
        while self.current.is_none() {
            let Some((id, size)) = self.objects.as_mut().and_then(|o| o.pop()) else {
                return Ok(());
            };
            let keep = self.target.begin(&id, size)?;
            if size == 0 {
                if keep {
                    self.target.end()?;
                }
            } else {
                self.current = Some((size, keep));
            }
        }
        Ok(())
    }
}

impl<T: PackTarget> std::io::Write for PackSplitter<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        if self.objects.is_none() {
            // 8 fixed bytes (magic, count), then 40 per object.
            loop {
                let need = if self.header.len() < 8 {
                    8
                } else {
                    let n = u32::from_le_bytes(self.header[4..8].try_into().expect("4 bytes"));
                    if n as usize > PACK_MAX_OBJECTS {
                        return Err(Self::bad("too many objects"));
                    }
                    8 + 40 * n as usize
                };
                if self.header.len() == need {
                    break;
                }
                let take = (need - self.header.len()).min(rest.len());
                self.header.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if self.header.len() >= 4 && &self.header[..4] != PACK_MAGIC {
                    return Err(Self::bad("missing pack header"));
                }
                if self.header.len() < need && rest.is_empty() {
                    return Ok(buf.len());
                }
            }
            let mut objects: Vec<([u8; 32], u64)> = self.header[8..]
                .chunks_exact(40)
                .map(|c| {
                    (
                        c[..32].try_into().expect("32 bytes"),
                        u64::from_le_bytes(c[32..].try_into().expect("8 bytes")),
                    )
                })
                .collect();
            self.target.listed(&objects)?;
            objects.reverse();
            self.objects = Some(objects);
            self.header = Vec::new();
            self.advance()?;
        }
        while !rest.is_empty() {
            let Some((left, keep)) = self.current.as_mut() else {
                return Err(Self::bad("longer than its header says"));
            };
            let take = (*left).min(rest.len() as u64) as usize;
            if *keep {
                self.target.data(&rest[..take])?;
            }
            *left -= take as u64;
            rest = &rest[take..];
            if *left == 0 {
                let keep = *keep;
                self.current = None;
                if keep {
                    self.target.end()?;
                }
                self.advance()?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
        let p = PackRef {
            id: [0x33; 32],
            len: 0x0a0b,
        };
        let name = [7u8; 32];
        let m = |records: Vec<ManifestRecord>, packs: Vec<PackRef>| Manifest { records, packs };
        let b = encode_manifest(&[r, r], &[p], "main", &name, None);
        assert_eq!(b.len(), 4 + 4 + 160 + 4 + 40);
        assert_eq!(&b[..4], b"sgm3");
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
        assert_eq!(
            decode_manifest(&b, "main", &name, None),
            Ok(m(vec![r, r], vec![p]))
        );
        // A key-holding reader refuses it unsigned.
        assert_eq!(
            decode_manifest(&b, "main", &name, Some(b"k")),
            Err(EntryRejection::Unsigned)
        );
        let signed = encode_manifest(&[r], &[p], "main", &name, Some(b"k"));
        assert_eq!(signed.len(), 4 + 4 + 80 + 4 + 40 + 32);
        assert_eq!(
            decode_manifest(&signed, "main", &name, Some(b"k")),
            Ok(m(vec![r], vec![p]))
        );
        // Without a key the tag is not needed, but the records still decode.
        assert_eq!(
            decode_manifest(&signed, "main", &name, None),
            Ok(m(vec![r], vec![p]))
        );
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
        // A flipped bit in a record or in a pack reference breaks the tag.
        for at in [40, 100] {
            let mut flipped = signed.clone();
            flipped[at] ^= 1;
            assert_eq!(
                decode_manifest(&flipped, "main", &name, Some(b"k")),
                Err(EntryRejection::BadSignature)
            );
        }
        for bad in [
            &signed[..signed.len() - 1],
            &b[..b.len() - 1],
            &b[..7],
            b"sgm1",
            b"sgm3",
        ] {
            assert_eq!(
                decode_manifest(bad, "main", &name, None),
                Err(EntryRejection::Malformed)
            );
        }
        // A count beyond the bytes present is malformed, not a panic.
        let mut long = b.clone();
        long[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_manifest(&long, "main", &name, None),
            Err(EntryRejection::Malformed)
        );
        let empty = encode_manifest(&[], &[], "main", &name, None);
        assert_eq!(
            decode_manifest(&empty, "main", &name, None),
            Ok(m(vec![], vec![]))
        );
        // The previous version (records only) is still read, signed or not.
        let mut v2 = b"sgm2".to_vec();
        v2.extend_from_slice(&b[8..88]);
        assert_eq!(
            decode_manifest(&v2, "main", &name, None),
            Ok(m(vec![r], vec![]))
        );
        let tag = manifest_mac(b"k", b"sgcache-manifest-v2\0", "main", &name, &v2[4..])
            .finalize()
            .into_bytes();
        v2.extend_from_slice(&tag);
        assert_eq!(
            decode_manifest(&v2, "main", &name, Some(b"k")),
            Ok(m(vec![r], vec![]))
        );
        assert_eq!(
            decode_manifest(&v2, "main", &name, Some(b"other")),
            Err(EntryRejection::BadSignature)
        );
    }

    /// Records what a [`PackSplitter`] hands out.
    #[derive(Default)]
    struct Collect {
        skip: Vec<[u8; 32]>,
        got: Vec<([u8; 32], Vec<u8>)>,
        open: Option<([u8; 32], Vec<u8>)>,
    }

    impl PackTarget for Collect {
        fn begin(&mut self, id: &[u8; 32], _size: u64) -> std::io::Result<bool> {
            assert!(self.open.is_none(), "begin while an object is open");
            if self.skip.contains(id) {
                return Ok(false);
            }
            self.open = Some((*id, Vec::new()));
            Ok(true)
        }
        fn data(&mut self, b: &[u8]) -> std::io::Result<()> {
            self.open.as_mut().expect("open").1.extend_from_slice(b);
            Ok(())
        }
        fn end(&mut self) -> std::io::Result<()> {
            self.got.push(self.open.take().expect("open"));
            Ok(())
        }
    }

    #[test]
    fn pack_splits_at_every_chunking_and_rejects_garbage() {
        use std::io::Write;
        let objs: Vec<([u8; 32], Vec<u8>)> = vec![
            ([1; 32], b"first object".to_vec()),
            ([2; 32], Vec::new()),
            ([3; 32], vec![9; 1000]),
            ([4; 32], b"last".to_vec()),
        ];
        let mut pack = encode_pack_header(
            &objs
                .iter()
                .map(|(i, b)| (*i, b.len() as u64))
                .collect::<Vec<_>>(),
        );
        assert_eq!(&pack[..8], b"sgp1\x04\0\0\0");
        assert_eq!(pack.len(), 8 + 4 * 40);
        for (_, b) in &objs {
            pack.extend_from_slice(b);
        }
        for step in [1, 3, 7, 40, 41, 999, pack.len()] {
            let mut sp = PackSplitter::new(Collect {
                skip: vec![[3; 32]],
                ..Default::default()
            });
            for c in pack.chunks(step) {
                sp.write_all(c).unwrap();
            }
            assert!(sp.is_complete(), "step {step}");
            let got = sp.into_target().got;
            let want: Vec<_> = objs
                .iter()
                .filter(|(i, _)| *i != [3; 32])
                .cloned()
                .collect();
            assert_eq!(got, want, "step {step}");
        }
        // Incomplete, too long, bad magic, absurd count.
        let mut sp = PackSplitter::new(Collect::default());
        sp.write_all(&pack[..pack.len() - 1]).unwrap();
        assert!(!sp.is_complete());
        let mut sp = PackSplitter::new(Collect::default());
        let mut longer = pack.clone();
        longer.push(0);
        assert!(sp.write_all(&longer).is_err());
        let mut sp = PackSplitter::new(Collect::default());
        assert!(sp.write_all(b"sgp2\0\0\0\0").is_err());
        let mut sp = PackSplitter::new(Collect::default());
        assert!(sp.write_all(b"sgp1\xff\xff\xff\xff").is_err());
        // An empty pack is complete at once.
        let mut sp = PackSplitter::new(Collect::default());
        sp.write_all(&encode_pack_header(&[])).unwrap();
        assert!(sp.is_complete());
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
