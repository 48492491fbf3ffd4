//! Subcommands other than serving.

pub mod buildid;
pub mod maintain;
pub mod stats;
