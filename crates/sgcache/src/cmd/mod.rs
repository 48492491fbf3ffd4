//! Subcommands other than serving.

pub mod buildid;
pub mod doctor;
pub mod inspect;
pub mod maintain;
pub mod stats;
