//! Path and trust safety: no request can make sgcache read or write outside its directory,
//! every `DiskPath` is inside the local tier, and symlinks planted in the cache directory are
//! not followed to write elsewhere.
//!
//! Ids travel as 32 raw bytes and become 64 hex digits in a name (the hostile-stream table in
//! reliability_protocol.rs shows `../` in an id is refused as bad base64); what is left is the
//! file system itself: symlinks planted where sgcache writes.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};

use base64_simd::STANDARD as B64;
use sha2::{Digest, Sha256};

fn b64(b: &[u8]) -> String {
    B64.encode_to_string(b)
}

fn put(id: i64, action: &[u8; 32], body: &[u8]) -> String {
    let out: [u8; 32] = Sha256::digest(body).into();
    format!(
        "{{\"ID\":{id},\"Command\":\"put\",\"ActionID\":\"{}\",\"OutputID\":\"{}\",\"BodySize\":{}}}\n\n\"{}\"\n",
        b64(action),
        b64(&out),
        body.len(),
        b64(body)
    )
}

fn get(id: i64, action: &[u8; 32]) -> String {
    format!(
        "{{\"ID\":{id},\"Command\":\"get\",\"ActionID\":\"{}\"}}\n\n",
        b64(action)
    )
}

fn serve(dir: &Path, input: String) -> Vec<serde_json::Value> {
    crate::common::serve_input(dir, input.into_bytes()).replies
}

fn hexs(b: &[u8]) -> String {
    hex::encode(b)
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    outside: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // Let sgcache create the layout first.
    serve(&dir, String::new());
    Setup {
        _tmp: tmp,
        dir,
        outside,
    }
}

/// Every DiskPath sgcache hands out is an absolute path inside its directory, with no `..`.
#[test]
fn disk_paths_are_inside_the_local_tier() {
    let s = setup();
    let mut input = String::new();
    for i in 0..64u8 {
        input.push_str(&put(i64::from(i) + 1, &[i; 32], &[i; 100]));
        input.push_str(&get(i64::from(i) + 1000, &[i; 32]));
    }
    let replies = serve(&s.dir, input);
    let canon = s.dir.canonicalize().unwrap();
    let mut n = 0;
    for r in &replies {
        if let Some(p) = r["DiskPath"].as_str() {
            n += 1;
            let p = Path::new(p);
            assert!(p.is_absolute(), "{p:?}");
            assert!(
                !p.components()
                    .any(|c| matches!(c, std::path::Component::ParentDir)),
                "{p:?}"
            );
            assert!(
                p.starts_with(&s.dir) || p.starts_with(&canon),
                "{p:?} outside"
            );
        }
    }
    assert_eq!(n, 128);
    eprintln!("paths: {n} DiskPaths, all inside the local tier");
}

/// A symlink planted as an index entry (`<action>-a` -> a file elsewhere): a put for that
/// action must not write through it.
#[test]
fn planted_index_entry_symlink_is_not_written_through() {
    let s = setup();
    let action = [0xab; 32];
    let victim = s.outside.join("victim");
    std::fs::write(&victim, b"precious data that must stay").unwrap();
    let link = s.dir.join(format!("ab/{}-a", hexs(&action)));
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let replies = serve(&s.dir, put(1, &action, b"body"));
    let after = std::fs::read(&victim).unwrap();
    eprintln!(
        "paths: put through a planted -a symlink: reply {}, victim {}",
        replies.last().unwrap(),
        if after == b"precious data that must stay" {
            "unchanged"
        } else {
            "OVERWRITTEN"
        }
    );
    assert_eq!(
        after,
        b"precious data that must stay",
        "sgcache wrote through a symlink planted at `{}`",
        link.display()
    );
}

/// A symlink planted as an output (`<out>-d` -> a file elsewhere with other content): the put
/// replaces the link, it does not write into the target.
#[test]
fn planted_output_symlink_is_not_written_through() {
    let s = setup();
    let body = b"the real output";
    let out: [u8; 32] = Sha256::digest(body).into();
    let victim = s.outside.join("victim");
    std::fs::write(&victim, b"precious data that must stay").unwrap();
    let link = s.dir.join(format!("{:02x}/{}-d", out[0], hexs(&out)));
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let replies = serve(&s.dir, put(1, &[1; 32], body));
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"precious data that must stay"
    );
    let dp = replies.last().unwrap()["DiskPath"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(std::fs::read(&dp).unwrap(), body);
    assert!(!std::fs::symlink_metadata(&dp).unwrap().is_symlink());
}

/// A symlink planted where sgcache's temp file goes (pid + counter are guessable): the temp
/// is created with O_EXCL, so the link is never followed.
#[test]
fn planted_temp_symlink_is_not_written_through() {
    let s = setup();
    let body = b"another output";
    let out: [u8; 32] = Sha256::digest(body).into();
    let victim = s.outside.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    // Plant links for the first pids the next process may get, counter 0.
    let sub = s.dir.join(format!("{:02x}", out[0]));
    let first = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(0);
    for pid in first..first + 64 {
        let _ =
            std::os::unix::fs::symlink(&victim, sub.join(format!("{}.tmp-{pid}-0", hexs(&out))));
    }
    serve(&s.dir, put(1, &[2; 32], body));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

/// A subdirectory replaced by a symlink to a directory elsewhere: sgcache must not create
/// files there.
#[test]
fn planted_subdirectory_symlink_is_not_written_through() {
    let s = setup();
    let action = [0xcd; 32];
    let sub = s.dir.join("cd");
    std::fs::remove_dir(&sub).unwrap();
    std::os::unix::fs::symlink(&s.outside, &sub).unwrap();
    let body = [0xcd; 50];
    let out: [u8; 32] = Sha256::digest(body).into();
    assert_ne!(out[0], 0xcd, "test wants the output elsewhere");
    let replies = serve(&s.dir, put(1, &action, &body));
    let planted: Vec<_> = std::fs::read_dir(&s.outside)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    eprintln!(
        "paths: put through a planted subdirectory symlink: reply {}, files created outside: {planted:?}",
        replies.last().unwrap()
    );
    assert!(
        planted.is_empty(),
        "sgcache created {planted:?} in `{}` through the symlink `{}`",
        s.outside.display(),
        sub.display()
    );
}
