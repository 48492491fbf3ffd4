//! Subcommands other than serving.

pub mod maintain;
pub mod stats;
