//! sgcache's remote tier: stores, byte formats, keys and the upload queue.
//!
//! - [`Store`]: a flat key → bytes map with get / put / exists / delete and
//!   [`Capabilities`]; one implementation over Apache OpenDAL ([`OpendalStore`]) chosen by
//!   URL, and wrappers ([`layers`]) for time limits, retries of temporary errors, metering and
//!   the circuit breaker.
//! - [`RemoteCache`]: the remote as a cache — action entries, objects, manifests and packs
//!   under sgcache's key layout, verified on the way in, judged by the trust policy
//!   ([`keys::Trust`]).
//! - [`UploadQueue`]: background uploads on a runtime it is given, bounded, counted.
//! - [`format`]: the byte formats, one module each; [`keys`]: Ed25519 keys and trust.
//!
//! The remote never fails a build: every error becomes a miss or a counted, skipped upload.
//! What to fetch when, and what to do with it locally, is the tiering crate's
//! (`sgcache-tier`). Library code never reads the environment; the binary resolves a
//! [`RemoteConfig`].

mod backend;
mod baseline;
mod cache;
mod config;
mod error;
pub mod format;
pub mod keys;
pub mod layers;
mod singleflight;
mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
mod upload;

pub use backend::{ACCEPTED_SCHEMES, Layout, OpendalStore, mask_url, open_store};
pub use cache::{Check, Lookup, RemoteCache};
pub use config::{Mode, RemoteConfig, defaults};
pub use error::{ErrorKind, StoreError};
pub use format::EntryRejection;
pub use format::baseline::{BaselineName, BaselineRef};
pub use format::manifest::{Manifest, ManifestName, PackRef};
pub use format::pack::{PackSplitter, PackTarget};
pub use keys::{KeyError, PublicKey, SecretKey, Trust};
pub use singleflight::SingleFlight;
pub use store::{Body, ByteStream, Capabilities, Store, read_all};
pub use upload::{DrainReport, Refused, UploadJob, UploadQueue};
