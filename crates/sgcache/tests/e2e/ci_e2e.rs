//! `sgcache ci restore-mtimes` with real git and the real go command: a CI job checks a
//! module out afresh (new mtimes on every file), and `go test` of a package that reads
//! `testdata/` is still reported `(cached)` from the shared remote, because restore-mtimes
//! gave every tracked file and directory the same mtime as on the checkout that stored the
//! result. Without it, the same sequence is not cached (the go command keys a test result on
//! the size and mtime of each file the test opened).
//!
//! Each scenario checks the module out at one path twice (a CI runner's workspace path is the
//! same on every run; without -trimpath the go command's action ids include the package
//! directory), with a fresh local cache each time and one `file://` remote.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::common::{bin, go_remote, have_go, run_ok, summary, write_file};

fn have_git(test: &str) -> bool {
    let ok = Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP {test}: git is not on PATH (restore-mtimes reads the git index)");
    }
    ok
}

fn git(dir: &Path, args: &[&str]) {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com");
    run_ok(c);
}

/// A git repository holding a module whose test reads `testdata/` (a file and the listing).
fn make_origin(root: &Path) -> PathBuf {
    let o = root.join("origin");
    write_file(&o, "go.mod", "module example.com/golden\n\ngo 1.21\n");
    write_file(
        &o,
        "golden/golden.go",
        "package golden\n\nimport \"strings\"\n\n// Shout upper-cases.\nfunc Shout(s string) string { return strings.ToUpper(s) }\n",
    );
    write_file(
        &o,
        "golden/golden_test.go",
        r#"package golden

import (
	"os"
	"strings"
	"testing"
)

func TestGolden(t *testing.T) {
	in, err := os.ReadFile("testdata/in.txt")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/want.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got := Shout(string(in)); got != string(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	entries, err := os.ReadDir("testdata")
	if err != nil || len(entries) != 2 {
		t.Fatalf("testdata: %v entries, %v", len(entries), err)
	}
	_ = strings.TrimSpace
}
"#,
    );
    write_file(&o, "golden/testdata/in.txt", "hello gopher\n");
    write_file(&o, "golden/testdata/want.txt", "HELLO GOPHER\n");
    git(&o, &["init", "-q", "-b", "main"]);
    git(&o, &["add", "-A"]);
    git(&o, &["commit", "-q", "-m", "golden"]);
    o
}

/// A fresh checkout of `origin` at `dest` (replacing what was there).
fn fresh_checkout(origin: &Path, dest: &Path) {
    if dest.exists() {
        std::fs::remove_dir_all(dest).unwrap();
    }
    git(
        dest.parent().unwrap(),
        &[
            "clone",
            "-q",
            "--no-local",
            origin.to_str().unwrap(),
            dest.to_str().unwrap(),
        ],
    );
}

fn restore_mtimes(dir: &Path) -> String {
    let mut c = Command::new(bin());
    c.args(["ci", "restore-mtimes"]).current_dir(dir);
    String::from_utf8_lossy(&run_ok(c).stdout).trim().to_owned()
}

/// `go test ./...` through sgcache (in-process, so its uploads are done when it returns);
/// returns stdout and the sgcache summary.
fn go_test(module: &Path, cache: &Path, url: &str) -> (String, String) {
    let mut c = go_remote(module, cache, url, "main");
    c.env("SGCACHE_DAEMON", "off").args(["test", "./..."]);
    let out = run_ok(c);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        summary(&out),
    )
}

fn cached(stdout: &str) -> bool {
    stdout
        .lines()
        .any(|l| l.contains("example.com/golden/golden") && l.contains("(cached)"))
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

/// The go command refuses to cache a test that read a file modified less than 2 s ago; wait
/// that out so "not cached" can only mean "another mtime".
fn let_files_age() {
    std::thread::sleep(Duration::from_millis(2_500));
}

#[test]
fn restore_mtimes_makes_go_test_cached_on_a_fresh_checkout() {
    let test = "restore_mtimes_makes_go_test_cached_on_a_fresh_checkout";
    if !have_go(test) || !have_git(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let origin = make_origin(tmp.path());
    let url = format!("file://{}", tmp.path().join("remote").display());
    let ws = tmp.path().join("ws");

    // Run 1: a fresh checkout, restore-mtimes, the test runs and its result is uploaded.
    fresh_checkout(&origin, &ws);
    let said = restore_mtimes(&ws);
    assert!(said.contains("set 5 files"), "{said}");
    let first = mtime(&ws.join("golden/testdata/in.txt"));
    let first_dir = mtime(&ws.join("golden/testdata"));
    let (out, sum) = go_test(&ws, &tmp.path().join("cache-1"), &url);
    assert!(
        !cached(&out),
        "a cold cache cannot have the result:\n{out}\n{sum}"
    );
    // The same checkout again: the result was cacheable at all.
    let (out, sum) = go_test(&ws, &tmp.path().join("cache-1"), &url);
    assert!(cached(&out), "run 1 again, same cache:\n{out}\n{sum}");

    // Run 2: a new runner: a new checkout (new mtimes), an empty local cache, the same remote.
    fresh_checkout(&origin, &ws);
    assert_ne!(
        mtime(&ws.join("golden/testdata/in.txt")),
        first,
        "a fresh checkout gives new mtimes"
    );
    restore_mtimes(&ws);
    assert_eq!(mtime(&ws.join("golden/testdata/in.txt")), first);
    assert_eq!(mtime(&ws.join("golden/testdata")), first_dir);
    let (out, sum) = go_test(&ws, &tmp.path().join("cache-2"), &url);
    assert!(
        cached(&out),
        "run 2 (fresh checkout + restore-mtimes + shared remote) must be (cached):\n{out}\n{sum}"
    );
    eprintln!("with restore-mtimes: {}", out.trim());
}

#[test]
fn without_restore_mtimes_a_fresh_checkout_is_not_cached() {
    let test = "without_restore_mtimes_a_fresh_checkout_is_not_cached";
    if !have_go(test) || !have_git(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let origin = make_origin(tmp.path());
    let url = format!("file://{}", tmp.path().join("remote").display());
    let ws = tmp.path().join("ws");

    fresh_checkout(&origin, &ws);
    let_files_age();
    go_test(&ws, &tmp.path().join("cache-1"), &url);
    let (out, sum) = go_test(&ws, &tmp.path().join("cache-1"), &url);
    assert!(cached(&out), "run 1 again, same cache:\n{out}\n{sum}");

    fresh_checkout(&origin, &ws);
    let_files_age();
    let (out, sum) = go_test(&ws, &tmp.path().join("cache-2"), &url);
    assert!(
        !cached(&out),
        "without restore-mtimes a fresh checkout must not be (cached):\n{out}\n{sum}"
    );
}

#[test]
fn restore_mtimes_is_the_same_at_any_path_and_leaves_modified_files_alone() {
    let test = "restore_mtimes_is_the_same_at_any_path_and_leaves_modified_files_alone";
    if !have_git(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let origin = make_origin(tmp.path());
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    fresh_checkout(&origin, &a);
    fresh_checkout(&origin, &b);
    // A shallow clone has no history beyond the head: the rule does not need it.
    let c = tmp.path().join("c");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &format!("file://{}", origin.display()),
            c.to_str().unwrap(),
        ],
    );
    // A modified file keeps its new mtime: its content is not the committed one.
    std::fs::write(a.join("golden/testdata/want.txt"), "HELLO GOPHEr\n").unwrap();
    let before = mtime(&a.join("golden/testdata/want.txt"));
    let said = restore_mtimes(&a.join("golden")); // any directory inside the work tree
    assert!(said.contains("left 1 modified"), "{said}");
    assert_eq!(mtime(&a.join("golden/testdata/want.txt")), before);
    restore_mtimes(&b);
    restore_mtimes(&c);
    for rel in [
        "go.mod",
        "golden/golden.go",
        "golden/testdata/in.txt",
        "golden",
    ] {
        assert_eq!(mtime(&a.join(rel)), mtime(&b.join(rel)), "{rel}: a vs b");
        assert_eq!(
            mtime(&b.join(rel)),
            mtime(&c.join(rel)),
            "{rel}: b vs shallow c"
        );
    }
    // Different content, different mtime (same size: only the mtime tells them apart).
    assert_ne!(
        mtime(&b.join("golden/testdata/in.txt")),
        mtime(&b.join("golden/testdata/want.txt"))
    );
    // Outside a work tree: one line saying so, exit 1.
    let out = Command::new(bin())
        .args(["ci", "restore-mtimes"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("git rev-parse"), "{err}");
}
