//! `sgcache keygen`: a new Ed25519 key pair for signed remote entries.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sgcache_store::SecretKey;

/// Prints `SGCACHE_SIGNING_KEY=sgsk1_…` and `SGCACHE_TRUSTED_KEYS=sgpk1_…`, one per line, so
/// the output can be pasted into a secret store and a workflow file (or sourced).
pub fn run() -> Result<ExitCode> {
    let key = SecretKey::generate().context("reading the operating system's random generator")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "SGCACHE_SIGNING_KEY={}", key.to_text())?;
    writeln!(out, "SGCACHE_TRUSTED_KEYS={}", key.public().to_text())?;
    Ok(ExitCode::SUCCESS)
}
