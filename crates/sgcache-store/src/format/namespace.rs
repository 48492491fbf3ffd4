//! Namespaces in key names.
//!
//! A namespace (trust scope, e.g. a branch) becomes one key segment in the framed layout
//! (`<segment>/ac/…`), and a salt of the action key in the plain layout, whose servers require
//! exactly `ac/<64 hex>`.

use sgcache_types::ActionId;
use sha2::{Digest, Sha256};

/// Encodes a namespace as one key segment: `[A-Za-z0-9_-]` and non-leading `.` stay, every
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
pub fn plain_action_key(ns: &str, action: &ActionId) -> [u8; 32] {
    if ns == "default" {
        return action.to_bytes();
    }
    let mut h = Sha256::new();
    h.update(b"sgcache-ns-v1\0");
    h.update(ns.as_bytes());
    h.update(b"\0");
    h.update(action.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_encoding() {
        assert_eq!(encode_namespace("main"), "main");
        assert_eq!(encode_namespace("feature/x"), "feature~2Fx");
        assert_eq!(encode_namespace(".."), "~2E.");
        assert_eq!(encode_namespace("a~b"), "a~7Eb");
    }

    #[test]
    fn plain_keys_separate_namespaces() {
        let a = ActionId::from_bytes([7; 32]);
        assert_eq!(plain_action_key("default", &a), [7; 32]);
        assert_ne!(plain_action_key("main", &a), [7; 32]);
        assert_ne!(plain_action_key("main", &a), plain_action_key("pr-1", &a));
    }
}
