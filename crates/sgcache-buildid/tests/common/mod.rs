//! Helpers shared by the integration tests: finding the Go toolchain and its test data.
#![allow(dead_code)]

pub mod go;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Says why a test is skipping, on stderr (visible with `--nocapture`).
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

/// `$(go env GOROOT)`, or `None` when there is no usable go command.
pub fn goroot() -> Option<PathBuf> {
    let out = Command::new("go").args(["env", "GOROOT"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let p = PathBuf::from(s.trim());
    p.is_dir().then_some(p)
}

/// The directory with Go's buildid test vectors, or a reason why it is unavailable.
pub fn testdata() -> Result<PathBuf, String> {
    let root = goroot().ok_or("no Go toolchain: `go env GOROOT` failed (is `go` on PATH?)")?;
    let dir = root.join("src/cmd/internal/buildid/testdata");
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "{} does not exist (GOROOT without sources?)",
            dir.display()
        ))
    }
}

/// Standard base64 decoding that skips line breaks (what `obscuretestdata` does).
pub fn base64_decode(input: &[u8]) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in input {
        let Some(v) = val(c) else { continue };
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Decodes `testdata/<name>.base64` into memory.
pub fn vector(dir: &Path, name: &str) -> Vec<u8> {
    let raw = std::fs::read(dir.join(format!("{name}.base64"))).expect("read test vector");
    base64_decode(&raw)
}
