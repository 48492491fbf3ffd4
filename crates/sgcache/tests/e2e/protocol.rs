//! The GOCACHEPROG protocol against the real binary, driven with byte streams.
#![allow(clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::cache_files as entries;
use base64_simd::STANDARD as B64;
use sha2::{Digest, Sha256};

fn b64(b: &[u8]) -> String {
    B64.encode_to_string(b)
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn action(n: u8) -> [u8; 32] {
    [n; 32]
}

fn get(id: i64, a: &[u8; 32]) -> String {
    format!(
        "{{\"ID\":{id},\"Command\":\"get\",\"ActionID\":\"{}\"}}\n\n",
        b64(a)
    )
}

fn put_raw(
    id: i64,
    a: &[u8; 32],
    out: &[u8; 32],
    size: i64,
    body_b64: &str,
    field: &str,
) -> String {
    let mut s = format!(
        "{{\"ID\":{id},\"Command\":\"put\",\"ActionID\":\"{}\",\"{field}\":\"{}\",\"BodySize\":{size}}}\n\n",
        b64(a),
        b64(out)
    );
    if size > 0 {
        s.push_str(&format!("\"{body_b64}\"\n"));
    }
    s
}

fn put(id: i64, a: &[u8; 32], body: &[u8]) -> String {
    put_raw(id, a, &sha(body), body.len() as i64, &b64(body), "OutputID")
}

const CLOSE: &str = "{\"ID\":999,\"Command\":\"close\"}\n\n";

fn run(dir: &Path, input: &[u8]) -> crate::common::Served {
    crate::common::serve_input(dir, input.to_vec())
}

#[test]
fn handshake_put_get_close() {
    let tmp = tempfile::tempdir().unwrap();
    let body = b"hello";
    let input = format!(
        "{}{}{}{CLOSE}",
        put(1, &action(1), body),
        get(2, &action(1)),
        get(3, &action(2))
    );
    let r = run(tmp.path(), input.as_bytes());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.raw.lines().next().unwrap(),
        r#"{"ID":0,"KnownCommands":["get","put","close"]}"#
    );
    let p = r.reply(1)["DiskPath"].as_str().unwrap();
    assert!(Path::new(p).is_absolute());
    assert!(Path::new(p).extension().is_none(), "{p}");
    assert_eq!(std::fs::read(p).unwrap(), body);

    let hit = r.reply(2);
    assert_eq!(hit["OutputID"], b64(&sha(body)));
    assert_eq!(hit["Size"], 5);
    assert!(hit["Time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(hit["DiskPath"], p);
    assert_eq!(r.reply(3)["Miss"], true);
    assert_eq!(r.reply(999)["ID"], 999);
    // The go command's own reader can read what we wrote.
    let entry = std::fs::read(
        tmp.path()
            .join("01")
            .join(format!("{}-a", hex::encode(action(1)))),
    )
    .unwrap();
    assert_eq!(entry.len(), 175);
    assert!(entry.starts_with(b"v1 0101"));
}

#[test]
fn object_id_only_put_from_old_toolchains() {
    let tmp = tempfile::tempdir().unwrap();
    let body = b"from go1.23";
    let input = format!(
        "{}{}{CLOSE}",
        put_raw(
            1,
            &action(5),
            &sha(body),
            body.len() as i64,
            &b64(body),
            "ObjectID"
        ),
        get(2, &action(5))
    );
    let r = run(tmp.path(), input.as_bytes());
    assert!(r.reply(1)["DiskPath"].is_string(), "{}", r.raw);
    assert_eq!(r.reply(2)["OutputID"], b64(&sha(body)));
}

#[test]
fn empty_body_put() {
    let tmp = tempfile::tempdir().unwrap();
    let input = format!("{}{}{CLOSE}", put(1, &action(3), b""), get(2, &action(3)));
    let r = run(tmp.path(), input.as_bytes());
    let p = r.reply(1)["DiskPath"].as_str().unwrap().to_owned();
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
    assert!(p.ends_with("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855-d"));
    assert_eq!(r.reply(2)["DiskPath"], p.as_str());
    assert!(r.reply(2).get("Size").is_none());
}

#[test]
fn bad_puts_get_one_line_errors_and_store_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let body = b"some bytes";
    let good = sha(body);
    let short_id = B64.encode_to_string([7u8; 31]);
    let input = [
        // Invalid base64 body.
        put_raw(1, &action(1), &good, 10, "c29tZSBi!!!5dGVz", "OutputID"),
        // Body shorter than BodySize.
        put_raw(2, &action(2), &good, 11, &b64(body), "OutputID"),
        // Body longer than BodySize.
        put_raw(3, &action(3), &good, 9, &b64(body), "OutputID"),
        // SHA-256 differs from OutputID.
        put_raw(4, &action(4), &sha(b"other"), 10, &b64(body), "OutputID"),
        // ActionID of 31 bytes.
        format!("{{\"ID\":5,\"Command\":\"get\",\"ActionID\":\"{short_id}\"}}\n\n"),
        // Unknown command.
        "{\"ID\":6,\"Command\":\"get2\"}\n\n".to_owned(),
        // Invalid JSON types, but framed.
        "{\"ID\":7,\"Command\":\"put\",\"ActionID\":12}\n\n".to_owned(),
        // Still serving afterwards.
        get(8, &action(9)),
        // Duplicate ID.
        get(8, &action(9)),
        CLOSE.to_owned(),
    ]
    .concat();
    let r = run(tmp.path(), input.as_bytes());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for (id, needle) in [
        (1, "base64"),
        (2, "BodySize"),
        (3, "BodySize"),
        (4, "hash"),
        (5, "31 bytes"),
        (6, "unknown command"),
        (7, "malformed"),
    ] {
        let e = r.err(id);
        assert!(!e.contains('\n'));
        assert!(
            e.to_lowercase().contains(&needle.to_lowercase()),
            "reply {id}: {e:?} lacks {needle:?}"
        );
    }
    let eights: Vec<_> = r.replies.iter().filter(|v| v["ID"] == 8).collect();
    assert_eq!(eights.len(), 2, "{}", r.raw);
    assert_eq!(eights[0]["Miss"], true);
    assert!(eights[1]["Err"].as_str().unwrap().contains("duplicate"));
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "nothing stored");
}

#[test]
fn not_json_exits_nonzero_with_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let input = format!(
        "{}this is not json\n{}",
        get(1, &action(1)),
        get(2, &action(1))
    );
    let r = run(tmp.path(), input.as_bytes());
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("not JSON"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_eq!(r.reply(1)["Miss"], true);
}

#[test]
fn stdin_closing_mid_body_leaves_no_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let body = vec![42u8; 300_000];
    let full = put(1, &action(1), &body);
    let cut = &full.as_bytes()[..full.len() / 2];
    let r = run(tmp.path(), cut);
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("middle"), "{}", r.stderr);
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
}

#[test]
fn end_of_input_without_close_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(tmp.path(), put(1, &action(1), b"x").as_bytes());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.reply(1)["DiskPath"].is_string());
}

#[test]
fn no_arguments_in_a_terminal_prints_help() {
    // `script` gives the child a pseudo-terminal as stdin.
    let Ok(out) = Command::new("script")
        .args([
            "-qec",
            &format!("{} </dev/tty", crate::common::bin().display()),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
    else {
        eprintln!(
            "SKIP no_arguments_in_a_terminal_prints_help: `script` (util-linux) is not installed"
        );
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Usage"), "{text}");
}

/// A 64 MB put streams through a bounded buffer: peak RSS stays far below the object.
#[test]
fn large_put_streams_with_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let req = put(1, &action(1), &body);
    drop(body);
    let mut child = crate::common::serve_cmd(tmp.path())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(req.as_bytes()).unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap(); // handshake
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("DiskPath"), "{line}");
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    eprintln!("peak RSS after a 64 MiB put: {hwm_kb} KiB");
    if hwm_kb > 0 {
        assert!(hwm_kb < 40 * 1024, "peak RSS {hwm_kb} KiB for a 64 MiB put");
    }
}

/// A knob with a value that cannot mean anything (including the daemon and pack knobs):
/// one clear line naming the knob and what it takes, a non-zero exit before the handshake,
/// and nothing written to the cache directory.
#[test]
fn bad_knob_values_are_one_clear_error_and_touch_nothing() {
    for (knob, value, says) in [
        ("SGCACHE_DAEMON", "bogus", "possible values: off, on, auto"),
        ("SGCACHE_DAEMON_IDLE", "forever", "is not a duration"),
        ("SGCACHE_MAX_SIZE", "lots", "is not a size"),
        ("SGCACHE_UPLOAD_DEADLINE", "soon", "is not a duration"),
        ("SGCACHE_PACKS", "maybe", "value was not a boolean"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let out = crate::common::serve_cmd(&dir)
            .env(
                "SGCACHE_REMOTE",
                format!("file://{}", tmp.path().join("r").display()),
            )
            .env(knob, value)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{knob}={value} was accepted");
        assert!(
            out.stdout.is_empty(),
            "{knob}={value}: handshake sent anyway"
        );
        assert!(
            err.contains(value) && err.contains(says),
            "{knob}={value}: {err}"
        );
        assert!(
            !dir.exists(),
            "{knob}={value}: the cache directory was touched"
        );
    }
}
