//! Subcommands other than serving.

pub mod buildid;
pub mod ci;
pub mod doctor;
pub mod explain;
pub mod inspect;
pub mod keygen;
pub mod maintain;
pub mod prefetch;
pub mod stats;
