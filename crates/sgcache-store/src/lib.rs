//! sgcache's remote tier.
//!
//! A small [`Store`] trait (get / put / exists / delete plus [`Capabilities`]) with one
//! implementation over Apache OpenDAL ([`OpendalStore`]) built from a URL, and wrappers
//! ([`layers`]) for timeouts, retries of temporary errors, metering and the circuit breaker.
//! [`Remote`] puts them together with the key layout, zstd compression, entry signing,
//! namespaces and the background upload queue. The remote never fails a build: every
//! error becomes a miss or a dropped upload.
//!
//! Library code never reads the environment; the binary resolves a [`RemoteConfig`].

mod backend;
mod error;
mod format;
pub mod layers;
mod remote;
mod singleflight;
mod store;

pub use backend::{ACCEPTED_SCHEMES, Layout, OpendalStore, mask_url, open_store};
pub use error::{ErrorKind, StoreError};
pub use format::{
    CODEC_RAW, CODEC_ZSTD, EntryRejection, MANIFEST_MAGIC, MANIFEST_MAX, MANIFEST_MAX_PACKS,
    Manifest, ManifestRecord, OBJECT_MAGIC, PACK_MAGIC, PackRef, PackSplitter, PackTarget,
    RemoteEntry, decode_entry, decode_manifest, encode_entry, encode_manifest, encode_namespace,
    encode_pack_header, plain_action_key,
};
pub use remote::{DrainReport, Mode, Remote, RemoteConfig};
pub use singleflight::SingleFlight;
pub use store::{Body, ByteStream, Capabilities, Store, read_all};
