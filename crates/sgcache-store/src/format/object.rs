//! Objects (`cas/<output id>`): the framed layout's 4-byte header, and the decoder that
//! streams a stored object through decompression into a sink while verifying it.
//!
//! Framed layout: `S` `G` `C` then the codec byte, `0x00` = raw bytes follow, `0x01` = one
//! or more zstd frames follow. Every framed object carries it, so a raw object that happens to
//! start with the zstd magic is stored as `SGC\0` + its bytes and cannot be mistaken for a
//! compressed one. Plain layout: the raw bytes.
//!
//! The decoder never passes more than the recorded size to its sink, and at the end checks the
//! length and (unless the sink hashes itself) the SHA-256.

use sgcache_types::OutputId;
use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// Object header magic.
pub const OBJECT_MAGIC: [u8; 3] = *b"SGC";
/// Codec byte: raw bytes follow.
pub const CODEC_RAW: u8 = 0;
/// Codec byte: zstd frames follow.
pub const CODEC_ZSTD: u8 = 1;

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
    pub(crate) fn finish(mut self, output_id: &OutputId) -> Result<u64, StoreError> {
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
            if &got != output_id.as_bytes() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(
        framed: bool,
        stored: &[u8],
        size: u64,
        id: &OutputId,
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
        let id = OutputId::from_bytes(Sha256::digest(&body).into());
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
        let id = OutputId::from_bytes(Sha256::digest(&body).into());
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
            decode(true, &stored, 100_000, &OutputId::default(), 4096),
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
        let hid = OutputId::from_bytes(Sha256::digest(b"SGC\x01").into());
        assert_eq!(decode(false, b"SGC\x01", 4, &hid, 1).unwrap(), b"SGC\x01");
    }
}
