//! Real files from the go command on this machine: cross-compiled hello-world binaries
//! (no cgo) and package archives from the GOCACHE they were built with. For every file,
//! what we read must equal `go tool buildid FILE`, and rewriting must produce the very bytes
//! `go tool buildid -w` produces (after altering the content so the content ID changes).
//!
//! Skips, saying why, when there is no go command.

mod common;

use std::path::{Path, PathBuf};

use common::go::{build_hello, go_for as go, go_tool_buildid_ok as go_tool_buildid, hello_module};
use sgcache_buildid::{find_and_hash, read_file, read_from, rewrite_file};
use sha2::Digest;

const TARGETS: [(&str, &str); 5] = [
    ("linux", "amd64"),
    ("linux", "arm64"),
    ("darwin", "arm64"),
    ("darwin", "amd64"),
    ("windows", "amd64"),
];

/// Flips one byte outside every ID occurrence (preferring the "hello, world" text in
/// binaries) so the content ID must change.
fn alter(data: &mut [u8], id: &[u8]) {
    if let Some(i) = memchr::memmem::find(data, b"hello, world") {
        data[i] = b'H';
        return;
    }
    let (matches, _) = find_and_hash(&*data, id, 0).unwrap();
    let mut pos = data.len() - 1;
    while matches
        .iter()
        .any(|&m| (m as usize..m as usize + id.len()).contains(&pos))
    {
        pos -= 1;
    }
    data[pos] ^= 0x55;
}

fn check_file(path: &Path, tmp: &Path, label: &str) {
    let want = go_tool_buildid(&[path.to_str().unwrap()]);
    let got = read_file(path).unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_eq!(
        [&got[..], b"\n"].concat(),
        want,
        "{label}: read_file vs go tool buildid"
    );
    assert!(!got.is_empty(), "{label}: has a build ID");
    let f = std::fs::File::open(path).unwrap();
    assert_eq!(
        read_from(path, &f, 2048).unwrap(),
        got,
        "{label}: readSize=2048"
    );

    let data = std::fs::read(path).unwrap();
    let base = find_and_hash(data.as_slice(), &got, 0).unwrap();
    assert!(!base.0.is_empty(), "{label}: ID occurs in the file");
    for bs in [got.len(), 1000, 4096, 31 * 1024] {
        if bs >= got.len() {
            assert_eq!(
                find_and_hash(data.as_slice(), &got, bs).unwrap(),
                base,
                "{label}: bufSize {bs}"
            );
        }
    }

    // Linux and darwin binaries carry a host build ID (GNU note / LC_UUID) that must be
    // excluded from the hash: a naive hash of the file with the IDs zeroed differs.
    if label.starts_with("hello-linux") || label.starts_with("hello-darwin") {
        let mut zeroed = data.clone();
        for &m in &base.0 {
            zeroed[m as usize..m as usize + got.len()].fill(0);
        }
        let naive: [u8; 32] = sha2::Sha256::digest(&zeroed).into();
        assert_ne!(
            naive, base.1,
            "{label}: host build ID excluded from the hash"
        );
    }

    // Unaltered: both tools leave the file as it is (the content ID is already right).
    let a = tmp.join(format!("{label}.go"));
    let b = tmp.join(format!("{label}.ours"));
    std::fs::write(&a, &data).unwrap();
    std::fs::write(&b, &data).unwrap();
    go_tool_buildid(&["-w", a.to_str().unwrap()]);
    rewrite_file(&b).unwrap();
    assert!(
        std::fs::read(&a).unwrap() == data,
        "{label}: go tool buildid -w changed an up-to-date file"
    );
    assert!(
        std::fs::read(&b).unwrap() == data,
        "{label}: rewrite_file changed an up-to-date file"
    );

    // Altered: the content ID changes, and our bytes equal Go's.
    let mut altered = data.clone();
    alter(&mut altered, &got);
    std::fs::write(&a, &altered).unwrap();
    std::fs::write(&b, &altered).unwrap();
    go_tool_buildid(&["-w", a.to_str().unwrap()]);
    let new_id = rewrite_file(&b).unwrap();
    let go_bytes = std::fs::read(&a).unwrap();
    let our_bytes = std::fs::read(&b).unwrap();
    assert_ne!(new_id, got, "{label}: content ID changed");
    assert_eq!(read_file(&b).unwrap(), new_id, "{label}: new ID readable");
    // On darwin/arm64 the Go linker signs ad hoc, and -w must re-sign: bytes outside the ID
    // occurrences change too.
    let (m, _) = find_and_hash(altered.as_slice(), &got, 0).unwrap();
    let outside = (0..altered.len())
        .filter(|&i| {
            altered[i] != go_bytes[i]
                && !m
                    .iter()
                    .any(|&p| (p as usize..p as usize + got.len()).contains(&i))
        })
        .count();
    assert_eq!(
        outside > 0,
        label == "hello-darwin-arm64",
        "{label}: {outside} bytes re-signed"
    );
    if go_bytes != our_bytes {
        let first = go_bytes.iter().zip(&our_bytes).position(|(x, y)| x != y);
        panic!(
            "{label}: -w output differs from go tool buildid -w (lengths {} vs {}, first difference at {first:?})",
            go_bytes.len(),
            our_bytes.len()
        );
    }
}

#[test]
fn real_binaries_and_archives() {
    if common::goroot().is_none() {
        return common::skip(
            "real_binaries_and_archives",
            "no Go toolchain: `go env GOROOT` failed",
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let module = hello_module(tmp.path());
    let mut checked = 0;
    for (goos, goarch) in TARGETS {
        let exe = build_hello(&module, goos, goarch);
        check_file(&exe, tmp.path(), &format!("hello-{goos}-{goarch}"));
        checked += 1;

        // Package archives exactly as the go command stored them in its GOCACHE.
        let exports = go(
            &[
                "list",
                "-export",
                "-f",
                "{{.Export}}",
                "fmt",
                "runtime",
                "errors",
                "example.com/hello",
            ],
            goos,
            goarch,
            &module,
        );
        for line in String::from_utf8(exports)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
        {
            let p = PathBuf::from(line);
            let head = std::fs::read(&p).unwrap();
            assert!(head.starts_with(b"!<arch>\n"), "{line} is an archive");
            let name = format!(
                "{}-{goos}-{goarch}.a",
                p.file_name().unwrap().to_string_lossy()
            );
            check_file(&p, tmp.path(), &name);
            checked += 1;
        }
    }
    assert_eq!(checked, 25);
}
