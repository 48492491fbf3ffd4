//! The action entry (`<ns>/ac/<action hex>`): one ASCII line.
//!
//! ```text
//! sgc2 <output id: 64 lowercase hex> <size: decimal u64> <time: decimal i64 ns>[ <key id: 16 hex> <signature: 128 hex>]\n
//! ```
//!
//! The signature is Ed25519 over
//! `"sgcache-ac-v2\0" ‖ namespace (UTF-8) ‖ "\0" ‖ action id (32) ‖ output id (32) ‖ size (u64 BE) ‖ time (i64 BE) ‖ key id (8)`,
//! so a signature copied to another action, namespace or key id does not verify. Whether an
//! entry is used is [`crate::keys::Trust`]'s decision. Entries of other versions (`sgc1`, the
//! HMAC-signed format of before) are [`EntryRejection::OtherVersion`]: a miss.

use sgcache_types::{ActionId, IndexEntry, OutputId};

use super::{EntryRejection, parse_dec, parse_hex32};
use crate::keys::{KeyId, SecretKey, Signature, Trust};

/// The version tag.
pub const ENTRY_TAG: &str = "sgc2";
/// Longest entry read (a signed one is at most 4+1+64+1+20+1+20+1+16+1+128+1 = 258 bytes).
pub const MAX_ENTRY: usize = 512;

/// The signed message for entry `e` in `namespace`, by key `key`.
pub fn signed_message(namespace: &str, e: &IndexEntry, key: KeyId) -> Vec<u8> {
    let mut m = Vec::with_capacity(14 + namespace.len() + 1 + 64 + 16 + 8);
    m.extend_from_slice(b"sgcache-ac-v2\0");
    m.extend_from_slice(namespace.as_bytes());
    m.push(0);
    m.extend_from_slice(e.action.as_bytes());
    m.extend_from_slice(e.output.as_bytes());
    m.extend_from_slice(&e.size.to_be_bytes());
    m.extend_from_slice(&e.time_nanos.to_be_bytes());
    m.extend_from_slice(&key.0);
    m
}

/// Encodes entry `e` for `namespace`; signed when `signer` is given.
pub fn encode(e: &IndexEntry, namespace: &str, signer: Option<&SecretKey>) -> Vec<u8> {
    let mut s = format!("{ENTRY_TAG} {} {} {}", e.output.hex(), e.size, e.time_nanos);
    if let Some(k) = signer {
        let sig = k.sign(|id| signed_message(namespace, e, id));
        s.push(' ');
        s.push_str(&hex::encode(sig.key.0));
        s.push(' ');
        s.push_str(&hex::encode(sig.bytes));
    }
    s.push('\n');
    s.into_bytes()
}

/// The entry and its signature, without a trust decision.
pub fn parse(
    bytes: &[u8],
    action: &ActionId,
) -> Result<(IndexEntry, Option<Signature>), EntryRejection> {
    if bytes.len() > MAX_ENTRY {
        return Err(EntryRejection::Malformed);
    }
    let s = std::str::from_utf8(bytes).map_err(|_| EntryRejection::Malformed)?;
    let s = s.strip_suffix('\n').ok_or(EntryRejection::Malformed)?;
    let mut it = s.split(' ');
    match it.next() {
        Some(ENTRY_TAG) => {}
        Some(t) if t.len() == 4 && t.starts_with("sgc") => {
            return Err(EntryRejection::OtherVersion);
        }
        _ => return Err(EntryRejection::Malformed),
    }
    let output = it
        .next()
        .and_then(parse_hex32)
        .ok_or(EntryRejection::Malformed)?;
    let size = it
        .next()
        .and_then(parse_dec::<u64>)
        .ok_or(EntryRejection::Malformed)?;
    let time_nanos = it
        .next()
        .and_then(parse_dec::<i64>)
        .ok_or(EntryRejection::Malformed)?;
    let sig = match (it.next(), it.next()) {
        (None, None) => None,
        (Some(k), Some(sig)) => {
            let mut key = [0u8; 8];
            let mut bytes = [0u8; 64];
            let lower = |x: &str| !x.bytes().any(|b| b.is_ascii_uppercase());
            if !(lower(k) && lower(sig))
                || hex::decode_to_slice(k, &mut key).is_err()
                || hex::decode_to_slice(sig, &mut bytes).is_err()
            {
                return Err(EntryRejection::Malformed);
            }
            Some(Signature {
                key: KeyId(key),
                bytes,
            })
        }
        _ => return Err(EntryRejection::Malformed),
    };
    if it.next().is_some() {
        return Err(EntryRejection::Malformed);
    }
    let e = IndexEntry {
        action: *action,
        output: OutputId::from_bytes(output),
        size,
        time_nanos,
    };
    Ok((e, sig))
}

/// Decodes an entry read from `namespace` for `action` and applies `trust`.
pub fn decode(
    bytes: &[u8],
    namespace: &str,
    action: &ActionId,
    trust: &Trust,
) -> Result<IndexEntry, EntryRejection> {
    let (e, sig) = parse(bytes, action)?;
    trust.check(namespace, sig.as_ref(), |k| {
        signed_message(namespace, &e, k)
    })?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ActionId = ActionId::from_bytes([0xaa; 32]);

    fn entry(size: u64, time_nanos: i64) -> IndexEntry {
        IndexEntry {
            action: A,
            output: OutputId::from_bytes([0x01; 32]),
            size,
            time_nanos,
        }
    }

    #[test]
    fn golden_unsigned() {
        let e = entry(42, 1_700_000_000_000_000_000);
        let open = Trust::new(&[], None, "default");
        let b = encode(&e, "default", None);
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            "sgc2 0101010101010101010101010101010101010101010101010101010101010101 42 1700000000000000000\n"
        );
        assert_eq!(decode(&b, "default", &A, &open), Ok(e));
    }

    #[test]
    fn signed_layout_and_every_forgery_is_rejected() {
        let main = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        let e = entry(0, -5);
        let b = encode(&e, "main", Some(&main));
        let line = std::str::from_utf8(&b).unwrap();
        let fields: Vec<&str> = line.trim_end().split(' ').collect();
        assert_eq!(fields.len(), 6);
        assert_eq!(fields[4], main.public().id().to_string());
        assert_eq!(fields[5].len(), 128);
        assert!(b.len() <= MAX_ENTRY);

        let reader = Trust::new(&[main.public().clone()], None, "pr-1");
        assert_eq!(decode(&b, "main", &A, &reader), Ok(e));
        // An unkeyed reader still reads signed entries.
        assert_eq!(decode(&b, "main", &A, &Trust::new(&[], None, "x")), Ok(e));
        // Another namespace, another action, another key, an edited field.
        assert_eq!(
            decode(&b, "release", &A, &reader),
            Err(EntryRejection::BadSignature)
        );
        assert_eq!(
            decode(&b, "main", &ActionId::from_bytes([0; 32]), &reader),
            Err(EntryRejection::BadSignature)
        );
        let forged = encode(&e, "main", Some(&other));
        assert_eq!(
            decode(&forged, "main", &A, &reader),
            Err(EntryRejection::UntrustedKey)
        );
        let edited = line.replacen(" 0 ", " 1 ", 1).into_bytes();
        assert_eq!(
            decode(&edited, "main", &A, &reader),
            Err(EntryRejection::BadSignature)
        );
        // A key id rewritten to the trusted one, signature kept.
        let mut swapped: Vec<String> = std::str::from_utf8(&forged)
            .unwrap()
            .trim_end()
            .split(' ')
            .map(str::to_owned)
            .collect();
        swapped[4] = main.public().id().to_string();
        let swapped = format!("{}\n", swapped.join(" ")).into_bytes();
        assert_eq!(
            decode(&swapped, "main", &A, &reader),
            Err(EntryRejection::BadSignature)
        );
        let unsigned = encode(&e, "main", None);
        assert_eq!(
            decode(&unsigned, "main", &A, &reader),
            Err(EntryRejection::Unsigned)
        );
    }

    #[test]
    fn malformed_and_other_versions() {
        let open = Trust::new(&[], None, "d");
        let out = "01".repeat(32);
        for bad in [
            String::new(),
            "sgc2\n".into(),
            format!("sgc2 {out} 01 1\n"),
            format!("sgc2 {out} -1 1\n"),
            format!("sgc2 {out} 1 1"),
            format!("sgc2 {out} 1 1 x\n"),
            format!("sgc2 {out} 1 1 {} {}\n", "0".repeat(16), "Z".repeat(128)),
            format!("sgc2 {} 1 1\n", "AB".repeat(32)),
            format!("sgx2 {out} 1 1\n"),
            format!("sgc2 {out} 1 1 {}\n", "x".repeat(600)),
        ] {
            assert_eq!(
                decode(bad.as_bytes(), "d", &A, &open),
                Err(EntryRejection::Malformed),
                "{bad:?}"
            );
        }
        let old = format!("sgc1 {out} 1 1 {}\n", "ab".repeat(32));
        assert_eq!(
            decode(old.as_bytes(), "d", &A, &open),
            Err(EntryRejection::OtherVersion)
        );
    }
}
