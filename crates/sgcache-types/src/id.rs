//! [`ActionId`] and [`OutputId`].

use std::fmt;
use std::str::FromStr;

/// Bytes in an ActionID or OutputID (a SHA-256).
pub const HASH_SIZE: usize = 32;

/// Why a text is not an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdParseError {
    /// What was expected (`ActionID`, `OutputID`).
    pub what: &'static str,
    /// The text, cut to 80 characters.
    pub text: String,
}

impl fmt::Display for IdParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an {}: want 64 lowercase hex digits",
            self.text, self.what
        )
    }
}

impl std::error::Error for IdParseError {}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $go:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        #[repr(transparent)]
        pub struct $name([u8; HASH_SIZE]);

        impl $name {
            /// The id with these bytes.
            pub const fn from_bytes(bytes: [u8; HASH_SIZE]) -> Self {
                $name(bytes)
            }

            /// The id from a slice of exactly 32 bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; HASH_SIZE]>::try_from(bytes).ok().map($name)
            }

            /// The 32 bytes.
            pub const fn as_bytes(&self) -> &[u8; HASH_SIZE] {
                &self.0
            }

            /// The 32 bytes, by value.
            pub const fn to_bytes(self) -> [u8; HASH_SIZE] {
                self.0
            }

            /// 64 lowercase hex digits, as in file names and remote keys.
            pub fn hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 12 hex digits and `…`, for messages.
            pub fn short(&self) -> String {
                let mut s = hex::encode(&self.0[..6]);
                s.push('…');
                s
            }

            /// Parses 64 hex digits (lowercase only, as every sgcache format writes them).
            pub fn parse_hex(s: &str) -> Result<Self, IdParseError> {
                let err = || IdParseError {
                    what: $go,
                    text: s.chars().take(80).collect(),
                };
                if s.len() != 2 * HASH_SIZE || s.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(err());
                }
                let mut out = [0u8; HASH_SIZE];
                hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
                Ok($name(out))
            }
        }

        impl fmt::Display for $name {
            /// 64 lowercase hex digits.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.short())
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl From<[u8; HASH_SIZE]> for $name {
            fn from(bytes: [u8; HASH_SIZE]) -> Self {
                $name(bytes)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, IdParseError> {
                $name::parse_hex(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::parse_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// An ActionID: the go command's cache key for one action, a SHA-256 of everything the
    /// action's result depends on (`cmd/go/internal/cache.ActionID`). Names an index entry.
    ActionId,
    "ActionID"
);

id_type!(
    /// An OutputID: the SHA-256 of an output's content (`cmd/go/internal/cache.OutputID`).
    /// Names an output file (`<hex>-d`) and a remote object (`cas/<hex>`); anything fetched
    /// under it is verified against it before use.
    OutputId,
    "OutputID"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms() {
        let a = ActionId::from_bytes([0xab; 32]);
        assert_eq!(a.hex(), "ab".repeat(32));
        assert_eq!(a.to_string(), a.hex());
        assert_eq!(a.short(), "abababababab…");
        assert_eq!(format!("{a:?}"), "ActionId(abababababab…)");
        assert_eq!("ab".repeat(32).parse::<ActionId>(), Ok(a));
        assert!("AB".repeat(32).parse::<ActionId>().is_err());
        assert!("ab".parse::<OutputId>().is_err());
        let e = "zz".repeat(32).parse::<OutputId>().unwrap_err();
        assert!(e.to_string().contains("OutputID"), "{e}");
        assert_eq!(OutputId::from_slice(&[1; 31]), None);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            format!("\"{}\"", a.hex())
        );
        assert_eq!(
            serde_json::from_str::<ActionId>(&format!("\"{}\"", a.hex())).unwrap(),
            a
        );
    }
}
