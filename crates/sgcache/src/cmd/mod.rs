//! Subcommands other than serving.

pub mod buildid;
pub mod doctor;
pub mod inspect;
pub mod keygen;
pub mod maintain;
pub mod stats;
