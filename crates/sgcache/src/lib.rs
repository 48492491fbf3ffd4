//! The sgcache program as a library: the CLI declaration, configuration, the serve loop, the
//! daemon's socket plumbing and the subcommands. The `sgcache` binary (`main.rs`) is a thin
//! shell over it; the library exists so tests and fuzz targets can drive [`serve::Server`]
//! in-process with byte buffers.
//!
//! The remote side of serving (fetching, build-context sessions, prefetch, packs, uploads)
//! is the `sgcache-tier` crate; [`remote::remote_work`] picks the implementation of its
//! `RemoteWork` seam that a run uses.

pub mod cli;
pub mod cmd;
pub mod config;
pub mod daemon;
pub mod remote;
pub mod serve;
