//! Helpers shared by the end-to-end tests, split by purpose; everything is re-exported here.
#![allow(dead_code, clippy::print_stderr)]

pub mod backends;
pub mod check;
pub mod faults;
pub mod go;
pub mod proxy;
pub mod serve;
pub mod summary;

pub use check::*;
pub use faults::*;
pub use go::*;
pub use serve::*;
pub use summary::*;
