//! Ed25519 keys in their text form, and the one trust policy every remote read goes through.
//!
//! # Text form
//!
//! A key is a prefix and the 32 key bytes in unpadded base64url (RFC 4648 §5), 49 ASCII
//! characters in all, safe in an environment variable, a YAML file and a secret store:
//!
//! ```text
//! sgsk1_<43 characters>   a secret (signing) key: the Ed25519 seed      SGCACHE_SIGNING_KEY
//! sgpk1_<43 characters>   a public (verifying) key                       SGCACHE_TRUSTED_KEYS
//! ```
//!
//! The prefixes make a key given in the wrong place a clear error, in both directions. A key
//! is named in entries and manifests by its [`KeyId`]: the first 8 bytes of
//! SHA-256(`"sgcache-key-v1\0"` ‖ public key).
//!
//! # Trust policy ([`Trust::check`])
//!
//! An action entry or manifest read from namespace `ns` is used when:
//!
//! | trusted keys | entry | used? |
//! |---|---|---|
//! | none | anything well formed | yes (an unkeyed reader trusts the store; `sgcache doctor` warns) |
//! | some | signed by a trusted key, signature valid for this namespace, action and content | yes |
//! | some | signed by a key not trusted | no (`UntrustedKey`) |
//! | some | signature does not verify | no (`BadSignature`) |
//! | some | unsigned, `ns` is the job's own namespace and the job holds no signing key | yes: a pull request reading its own earlier runs |
//! | some | unsigned, anything else | no (`Unsigned`) |
//!
//! The trusted keys are `SGCACHE_TRUSTED_KEYS` plus the public half of the job's own
//! `SGCACHE_SIGNING_KEY`, if any. A job that holds a signing key never accepts unsigned
//! entries, not even in its own namespace: whoever can write the store could have put them
//! there, and this job's readers trust what it writes.

use std::fmt;

use ed25519_dalek::{Signer as _, Verifier as _};
use sha2::{Digest, Sha256};

use crate::format::EntryRejection;

/// Prefix of a secret key's text form.
pub const SECRET_PREFIX: &str = "sgsk1_";
/// Prefix of a public key's text form.
pub const PUBLIC_PREFIX: &str = "sgpk1_";

/// Why a key's text is not usable. Each message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Empty text.
    #[error("empty key")]
    Empty,
    /// A secret key where a public key belongs.
    #[error(
        "this is a secret signing key (`{SECRET_PREFIX}…`), not a public key (`{PUBLIC_PREFIX}…`): \
         give the public key printed by `sgcache keygen`, and keep the secret out of workflow files"
    )]
    SecretNotPublic,
    /// A public key where a secret key belongs.
    #[error(
        "this is a public key (`{PUBLIC_PREFIX}…`), not a secret signing key (`{SECRET_PREFIX}…`); \
         `sgcache keygen` prints both"
    )]
    PublicNotSecret,
    /// Neither prefix.
    #[error(
        "not an sgcache key: expected `{expected}` followed by 43 base64url characters (see `sgcache keygen`)"
    )]
    NotAKey {
        /// The prefix that was expected.
        expected: &'static str,
    },
    /// The part after the prefix is not unpadded base64url.
    #[error("the key is not valid unpadded base64url after its prefix")]
    Encoding,
    /// Wrong number of key bytes.
    #[error("the key holds {0} bytes; an Ed25519 key has 32")]
    Length(usize),
    /// 32 bytes that are not an Ed25519 public key.
    #[error("the key's bytes are not an Ed25519 public key")]
    NotAPoint,
}

fn decode_text(text: &str, prefix: &'static str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    let body = match text.strip_prefix(prefix) {
        Some(b) => b,
        None if prefix == PUBLIC_PREFIX && text.starts_with(SECRET_PREFIX) => {
            return Err(KeyError::SecretNotPublic);
        }
        None if prefix == SECRET_PREFIX && text.starts_with(PUBLIC_PREFIX) => {
            return Err(KeyError::PublicNotSecret);
        }
        None => return Err(KeyError::NotAKey { expected: prefix }),
    };
    let bytes = base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(body.as_bytes())
        .map_err(|_| KeyError::Encoding)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Length(bytes.len()))
}

fn encode_text(prefix: &str, bytes: &[u8; 32]) -> String {
    format!(
        "{prefix}{}",
        base64_simd::URL_SAFE_NO_PAD.encode_to_string(bytes)
    )
}

/// The name of a key in signed entries and manifests (8 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    fn of(public: &[u8; 32]) -> KeyId {
        let mut h = Sha256::new();
        h.update(b"sgcache-key-v1\0");
        h.update(public);
        let d = h.finalize();
        KeyId(d[..8].try_into().expect("8 of 32 bytes"))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A signature as stored: which key made it, and the 64 signature bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// The signing key's id.
    pub key: KeyId,
    /// The Ed25519 signature.
    pub bytes: [u8; 64],
}

/// A secret signing key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretKey {
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(id {}, hidden)", self.public.id)
    }
}

impl SecretKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<SecretKey, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(SecretKey::from_seed(&seed))
    }

    fn from_seed(seed: &[u8; 32]) -> SecretKey {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let public = PublicKey::from_verifying(key.verifying_key());
        SecretKey { key, public }
    }

    /// Parses `sgsk1_…`.
    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        Ok(SecretKey::from_seed(&decode_text(text, SECRET_PREFIX)?))
    }

    /// The text form, `sgsk1_…` (a secret: print it only where the user asked for it).
    pub fn to_text(&self) -> String {
        encode_text(SECRET_PREFIX, &self.key.to_bytes())
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs the message `message(id)` (which names this key's id).
    pub fn sign(&self, message: impl FnOnce(KeyId) -> Vec<u8>) -> Signature {
        let m = message(self.public.id);
        Signature {
            key: self.public.id,
            bytes: self.key.sign(&m).to_bytes(),
        }
    }
}

/// A public (verifying) key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    id: KeyId,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_text())
    }
}

impl PublicKey {
    fn from_verifying(key: ed25519_dalek::VerifyingKey) -> PublicKey {
        let id = KeyId::of(key.as_bytes());
        PublicKey { key, id }
    }

    /// Parses `sgpk1_…`.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let bytes = decode_text(text, PUBLIC_PREFIX)?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotAPoint)?;
        Ok(PublicKey::from_verifying(key))
    }

    /// Parses a comma- or whitespace-separated list; an empty list is `Ok(vec![])`.
    pub fn parse_list(text: &str) -> Result<Vec<PublicKey>, KeyError> {
        text.split([',', ' ', '\n', '\t'])
            .filter(|s| !s.trim().is_empty())
            .map(PublicKey::parse)
            .collect()
    }

    /// The text form, `sgpk1_…`.
    pub fn to_text(&self) -> String {
        encode_text(PUBLIC_PREFIX, self.key.as_bytes())
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    fn verify(&self, message: &[u8], sig: &[u8; 64]) -> bool {
        self.key
            .verify(message, &ed25519_dalek::Signature::from_bytes(sig))
            .is_ok()
    }
}

/// The trust policy of one job (see the module docs for the table).
#[derive(Debug, Clone)]
pub struct Trust {
    keys: Vec<PublicKey>,
    own_namespace: String,
    signs: bool,
}

impl Trust {
    /// The policy of a job writing `own_namespace`, trusting `trusted` plus the public half
    /// of `signing`.
    pub fn new(trusted: &[PublicKey], signing: Option<&SecretKey>, own_namespace: &str) -> Trust {
        let mut keys: Vec<PublicKey> = trusted.to_vec();
        if let Some(s) = signing
            && !keys.contains(s.public())
        {
            keys.push(s.public().clone());
        }
        Trust {
            keys,
            own_namespace: own_namespace.to_owned(),
            signs: signing.is_some(),
        }
    }

    /// Whether this job trusts whatever the store holds (no trusted keys).
    pub fn trusts_anything(&self) -> bool {
        self.keys.is_empty()
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Decides whether an entry or manifest read from `namespace`, carrying `sig` over
    /// `message(key id)`, may be used.
    pub fn check(
        &self,
        namespace: &str,
        sig: Option<&Signature>,
        message: impl FnOnce(KeyId) -> Vec<u8>,
    ) -> Result<(), EntryRejection> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let Some(sig) = sig else {
            return if namespace == self.own_namespace && !self.signs {
                Ok(())
            } else {
                Err(EntryRejection::Unsigned)
            };
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sig.key)
            .ok_or(EntryRejection::UntrustedKey)?;
        if key.verify(&message(sig.key), &sig.bytes) {
            Ok(())
        } else {
            Err(EntryRejection::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_bad_material_is_named() {
        let s = SecretKey::generate().unwrap();
        let text = s.to_text();
        assert!(text.starts_with("sgsk1_") && text.len() == 49, "{text}");
        let back = SecretKey::parse(&text).unwrap();
        assert_eq!(back.public(), s.public());
        let p = s.public().to_text();
        assert!(p.starts_with("sgpk1_") && p.len() == 49, "{p}");
        assert_eq!(&PublicKey::parse(&p).unwrap(), s.public());
        assert_eq!(PublicKey::parse(&text), Err(KeyError::SecretNotPublic));
        assert_eq!(SecretKey::parse(&p).unwrap_err(), KeyError::PublicNotSecret);
        assert_eq!(PublicKey::parse(""), Err(KeyError::Empty));
        assert!(matches!(
            PublicKey::parse("hunter2"),
            Err(KeyError::NotAKey { .. })
        ));
        assert_eq!(PublicKey::parse("sgpk1_!!!"), Err(KeyError::Encoding));
        assert_eq!(PublicKey::parse("sgpk1_AAAA"), Err(KeyError::Length(3)));
        assert_eq!(
            PublicKey::parse_list(&format!(" {p}, {p}\n"))
                .unwrap()
                .len(),
            2
        );
        assert!(PublicKey::parse_list("").unwrap().is_empty());
        assert!(!format!("{s:?}").contains(&text[6..]));
    }

    #[test]
    fn trust_table() {
        let main = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        let msg = |ns: &'static str| move |k: KeyId| format!("{ns}{k}").into_bytes();
        let signed = main.sign(msg("main"));
        let foreign = other.sign(msg("main"));

        // No trusted keys: anything goes.
        let open = Trust::new(&[], None, "pr-1");
        assert!(open.trusts_anything());
        assert_eq!(open.check("main", None, msg("main")), Ok(()));

        // A pull request: public key only, own namespace pr-1.
        let pr = Trust::new(&[main.public().clone()], None, "pr-1");
        assert_eq!(pr.check("main", Some(&signed), msg("main")), Ok(()));
        assert_eq!(
            pr.check("main", None, msg("main")),
            Err(EntryRejection::Unsigned)
        );
        assert_eq!(pr.check("pr-1", None, msg("pr-1")), Ok(()));
        assert_eq!(
            pr.check("main", Some(&foreign), msg("main")),
            Err(EntryRejection::UntrustedKey)
        );
        // A valid signature over another namespace's message.
        assert_eq!(
            pr.check("pr-1", Some(&signed), msg("pr-1")),
            Err(EntryRejection::BadSignature)
        );

        // The main job: holds the key, so trusts it and never accepts unsigned.
        let m = Trust::new(&[], Some(&main), "main");
        assert!(!m.trusts_anything());
        assert_eq!(m.check("main", Some(&signed), msg("main")), Ok(()));
        assert_eq!(
            m.check("main", None, msg("main")),
            Err(EntryRejection::Unsigned)
        );
    }
}
