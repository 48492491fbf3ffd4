//! `HashToString` and the action/content split of a build ID.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encodes the first 120 bits of `h` as 20 URL-safe base64 characters, as Go's
/// `buildid.HashToString` does. This is the form every build ID component takes.
pub fn hash_to_string(h: &[u8; 32]) -> String {
    let mut out = String::with_capacity(20);
    for chunk in h[..15].chunks_exact(3) {
        let v = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            out.push(char::from(B64[((v >> shift) & 0x3f) as usize]));
        }
    }
    out
}

/// The action ID of a build ID: the text before the first `/`, or all of it.
pub fn action_id(build_id: &str) -> &str {
    build_id.split_once('/').map_or(build_id, |(a, _)| a)
}

/// The content ID of a build ID: the text after the last `/`, or all of it.
pub fn content_id(build_id: &str) -> &str {
    build_id.rsplit_once('/').map_or(build_id, |(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn hash_to_string_vectors() {
        let cases: [(&[u8], &str); 3] = [
            (b"", "47DEQpj8HBSa-_TImW-5"),
            (b"abc", "ungWv48Bz-pBQUDeXa4i"),
            (b"hello world", "uU0nuZNNPgilLlLX2n2r"),
        ];
        for (input, want) in cases {
            let h: [u8; 32] = Sha256::digest(input).into();
            assert_eq!(hash_to_string(&h), want, "input {input:?}");
        }
        assert_eq!(hash_to_string(&[0; 32]), "AAAAAAAAAAAAAAAAAAAA");
        assert_eq!(hash_to_string(&[0xff; 32]), "____________________");
    }

    #[test]
    fn split() {
        let id = "aaaa/bbbb/cccc/dddd";
        assert_eq!(action_id(id), "aaaa");
        assert_eq!(content_id(id), "dddd");
        assert_eq!(action_id("x"), "x");
        assert_eq!(content_id("x"), "x");
        assert_eq!(content_id("a/"), "");
    }
}
