//! The sgcache program as a library: the CLI declaration, configuration, the serve loop
//! and the subcommands. The `sgcache` binary (`main.rs`) is a thin shell over it; the
//! library exists so tests and fuzz targets can drive [`serve::Server`] in-process with
//! byte buffers.

pub mod cli;
pub mod cmd;
pub mod config;
pub mod daemon;
mod pack;
pub mod serve;
pub mod tier;
pub mod work;
