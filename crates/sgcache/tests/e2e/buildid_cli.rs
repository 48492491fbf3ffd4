//! `sgcache buildid [-w] FILE` against `go tool buildid [-w] FILE`, running both binaries.
//!
//! Needs the go command for the comparisons (skips them, saying why, without it); the error
//! cases run everywhere.

#[path = "../../../sgcache-buildid/tests/common/go.rs"]
mod go_ref;

use go_ref::{build_hello, go_tool_buildid, hello_module};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

fn sgcache(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sgcache"))
        .args(args)
        .output()
        .expect("run sgcache")
}

fn go_available() -> bool {
    Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

/// Exit 1 and exactly one line on stderr, naming the problem.
fn assert_one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {err}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("sgcache buildid: "), "{err:?}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

#[test]
fn errors_are_one_line_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).to_string_lossy().into_owned();
    std::fs::write(p("short"), b"abc").unwrap();
    std::fs::write(p("empty"), b"").unwrap();
    std::fs::write(p("text"), b"this is not a Go object file\n").unwrap();
    std::fs::create_dir(p("dir")).unwrap();

    assert_one_line_error(
        &sgcache(&["buildid", &p("missing")]),
        "no such file or directory",
    );
    assert_one_line_error(&sgcache(&["buildid", &p("short")]), "unexpected EOF");
    assert_one_line_error(&sgcache(&["buildid", &p("empty")]), "unexpected EOF");
    assert_one_line_error(&sgcache(&["buildid", &p("dir")]), "is a directory");
    assert_one_line_error(
        &sgcache(&["buildid", "-w", &p("text")]),
        "no build ID to rewrite",
    );
    // A file with no build ID: an empty line, as Go prints.
    let text = sgcache(&["buildid", &p("text")]);
    assert!(text.status.success());
    assert_eq!(text.stdout, b"\n");
    assert_one_line_error(
        &sgcache(&["buildid", "-w", &p("missing")]),
        "no such file or directory",
    );
    assert_eq!(
        std::fs::read(p("text")).unwrap(),
        b"this is not a Go object file\n",
        "-w left the file alone"
    );

    if go_available() {
        // Go fails on the same files, prints the same empty line for the text file, and
        // fails `-w` on it.
        for f in ["missing", "short", "empty", "dir"] {
            assert_eq!(
                go_tool_buildid(&[&p(f)]).status.code(),
                Some(1),
                "go tool buildid {f}"
            );
        }
        assert_eq!(go_tool_buildid(&[&p("text")]).stdout, b"\n");
        assert_eq!(go_tool_buildid(&["-w", &p("text")]).status.code(), Some(1));
    }
}

/// A Go archive header without a build id line: Go prints an empty line, and so do we.
#[test]
fn archive_without_build_id_prints_empty_line() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("nobid.a");
    std::fs::write(&a, b"!<arch>\n__.PKGDEF       0           0     0     644     40        `\ngo object linux amd64 go1.26 X:none\n\n").unwrap();
    let out = sgcache(&["buildid", a.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"\n");
    if go_available() {
        assert_eq!(go_tool_buildid(&[a.to_str().unwrap()]).stdout, b"\n");
    }
}

/// Every output of a real cache directory (archives, binaries, test results, text and data
/// outputs the go command stores) read by both tools: the same stdout and exit status.
#[test]
fn every_output_of_a_real_cache_reads_as_go_reads_it() {
    if !go_available() {
        return skip(
            "every_output_of_a_real_cache_reads_as_go_reads_it",
            "no go command on PATH",
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    crate::common::write_module(&module);
    let cache = tmp.path().join("cache");
    // Builds, a linked binary, vet and a cached test result: the kinds of outputs a cache holds.
    for args in [
        &["build", "./..."][..],
        &["vet", "./..."],
        &["test", "./..."],
        &["run", "./cmd/hello"],
    ] {
        let mut c = crate::common::go(&module, &cache, false);
        crate::common::run_ok({
            c.args(args);
            c
        });
    }
    let mut files = Vec::new();
    for sub in std::fs::read_dir(&cache).unwrap().flatten() {
        if sub.file_name().len() != 2 || !sub.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
            let p = f.path();
            if p.to_string_lossy().ends_with("-d") {
                if p.is_dir() {
                    files.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
                } else {
                    files.push(p);
                }
            }
        }
    }
    assert!(files.len() > 20, "{} outputs", files.len());
    let mut empty = 0;
    for f in &files {
        let f = f.to_str().unwrap();
        let (ours, go) = (sgcache(&["buildid", f]), go_tool_buildid(&[f]));
        assert_eq!(
            (ours.status.code(), &ours.stdout),
            (go.status.code(), &go.stdout),
            "{f}: sgcache {} / go {}",
            String::from_utf8_lossy(&ours.stderr),
            String::from_utf8_lossy(&go.stderr)
        );
        empty += usize::from(ours.stdout == b"\n");
    }
    assert!(
        empty > 0,
        "no output without a build ID among {}",
        files.len()
    );
    eprintln!(
        "buildid: {} cache outputs read alike ({empty} without a build ID)",
        files.len()
    );
}

#[test]
fn same_output_and_same_rewrite_as_go() {
    if !go_available() {
        return skip(
            "same_output_and_same_rewrite_as_go",
            "no go command on PATH",
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let module = hello_module(tmp.path());
    for (goos, goarch) in [
        ("linux", "amd64"),
        ("darwin", "arm64"),
        ("windows", "amd64"),
    ] {
        let exe = build_hello(&module, goos, goarch);
        let exe_s = exe.to_str().unwrap();
        let ours = sgcache(&["buildid", exe_s]);
        let go = go_tool_buildid(&[exe_s]);
        assert!(
            ours.status.success(),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        assert_eq!(
            ours.stdout, go.stdout,
            "{goos}/{goarch}: sgcache buildid == go tool buildid"
        );

        let mut data = std::fs::read(&exe).unwrap();
        let i = data.windows(12).position(|w| w == b"hello, world").unwrap();
        data[i] = b'H';
        let a = tmp.path().join(format!("{goos}-{goarch}.go"));
        let b = tmp.path().join(format!("{goos}-{goarch}.ours"));
        std::fs::write(&a, &data).unwrap();
        std::fs::write(&b, &data).unwrap();
        assert!(
            go_tool_buildid(&["-w", a.to_str().unwrap()])
                .status
                .success()
        );
        let out = sgcache(&["buildid", "-w", b.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        let (ga, gb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(ga != data, "{goos}/{goarch}: content ID changed");
        assert!(
            ga == gb,
            "{goos}/{goarch}: sgcache buildid -w == go tool buildid -w, byte for byte"
        );
        let after = sgcache(&["buildid", b.to_str().unwrap()]);
        assert_eq!(after.stdout, go_tool_buildid(&[a.to_str().unwrap()]).stdout);
    }
}

// ---- sgcache inspect ----

fn sgcache_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sgcache"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run sgcache")
}

#[test]
fn inspect_classifies_entries_and_reads_build_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = sgcache_disk::DiskCache::open(tmp.path()).unwrap();
    let archive = b"!<arch>\n__.PKGDEF       0           0     0     644     120       `\n\
go object linux amd64 go1.26.8 GOAMD64=v1 X:none\n\
build id \"abcdefghijklmnopqrst/ABCDEFGHIJKLMNOPQRST\"\n\n";
    let entries: [([u8; 32], &[u8]); 3] = [
        ([0xaa; 32], archive),
        ([0xab; 32], b"ok  \texample.com/x\t0.012s\n"),
        ([0xbb; 32], b""),
    ];
    for (id, data) in &entries {
        disk.put_bytes(&(*id).into(), data).unwrap();
    }
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let a_path = disk.action_path(&[0xaa; 32].into());

    // One match: the detailed view.
    let out = sgcache_in(tmp.path(), &["inspect", &"aa".repeat(32)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("kind        package archive"), "{text}");
    assert!(
        text.contains("build id    abcdefghijklmnopqrst/ABCDEFGHIJKLMNOPQRST"),
        "{text}"
    );
    assert!(text.contains("target      linux/amd64"), "{text}");
    assert!(text.contains("go version  go1.26.8"), "{text}");

    // A prefix, as JSON (`aa` matches the archive, not `abab…`).
    let out = sgcache_in(tmp.path(), &["inspect", "aa", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 1, "prefix aa matches aa… only");
    assert_eq!(v[0]["go_object"]["goarch"], "amd64");
    assert_eq!(v[0]["build_content_id"], "ABCDEFGHIJKLMNOPQRST");

    let out = sgcache_in(tmp.path(), &["inspect", "--all", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["package archive", "test result", "compiler/linker stdout"]
    );

    // Nothing matches: one line, exit 1. Not hex: an error.
    let out = sgcache_in(tmp.path(), &["inspect", "0123"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no entry matches"));
    assert!(!sgcache_in(tmp.path(), &["inspect", "xyz"]).status.success());

    // Inspecting is read-only: it does not refresh mtimes (Go's markUsed).
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&a_path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    sgcache_in(tmp.path(), &["inspect", "--all"]);
    assert_eq!(mtime(&a_path), old);

    // `sgcache inspect --all | head`: a reader that has gone is not an error. The pipe's read
    // end is closed before sgcache starts, so its first write fails with EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_sgcache"))
        .arg("--dir")
        .arg(tmp.path())
        .args(["inspect", "--all"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
