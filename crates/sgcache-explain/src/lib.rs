//! `sgcache explain`: why a go command missed the cache, down to the root cause.
//!
//! The go command says what went into every hash it computes when `GODEBUG=gocachehash=1`
//! is set ([`transcript`]), and which action ran and which found its result in the cache with
//! `-debug-actiongraph` ([`graph`]). Joined, they give each cacheable action of a run — keyed
//! by package and mode, with its [`sgcache_types::ActionId`] and its input lines ([`Run`]). A
//! run recorded on the main branch is the *baseline* ([`baseline`]: compact, versioned, zstd).
//! A later run is [compared](compare()) with it: every action that missed is matched with the
//! baseline's action for the same package and mode, and its changed inputs are followed down
//! `import`/`packagefile` edges to the actions whose own inputs changed (the root causes),
//! each classified with a remedy ([`classify`]); missed actions whose inputs did not change
//! are told apart ("not available"). [`render`] writes the report for a person; the
//! [`Report`] serializes for tools.
//!
//! This crate does no I/O: it parses bytes, builds values and writes strings. Running the
//! go command, reading the cache and the remote is the binary's (`sgcache explain`).

pub mod baseline;
pub mod classify;
mod compare;
pub mod graph;
mod model;
pub mod quote;
pub mod render;
pub mod transcript;

pub use baseline::BaselineError;
pub use classify::Class;
pub use compare::{
    ActionRef, BaselineInfo, Cascade, Change, Group, Report, RootCause, Summary, compare,
};
pub use graph::{Graph, GraphError};
pub use model::{Action, Detail, Mode, Options, Run, TestCheck, TestStatus, subkey};
pub use transcript::{Limits, LineKind, Parser, Transcript};
