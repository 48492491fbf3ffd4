//! Full and broken disks: the local directory on a small tmpfs that fills up mid-build, and a
//! tmpfs remounted read-only (before and during a build).
//!
//! The bar is the plain go command on the same kind of disk: sgcache must never fail a build
//! the go command alone would have passed. The plain go command is run on an identical fresh
//! tmpfs first and its result recorded. After every sgcache run: no temp file or torn output
//! remains, the independent Go-rules reader finds nothing corrupt, `sgcache verify` finds
//! nothing Go could read, and sgcache wrote at most one warning line.
//!
//! Needs root (mount); skips with a printed reason otherwise.
#![allow(clippy::print_stderr)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::common::{Tmpfs, check_cache, go, have_go, sgcache_verify, trials, write_module};

struct BuildResult {
    ok: bool,
    stderr: String,
}

fn build(module: &Path, cache: &Path, prog: bool, exe: &Path) -> BuildResult {
    let mut c = go(module, cache, prog);
    c.args(["build", "-o"]).arg(exe).arg("./cmd/hello");
    res(c.output().unwrap())
}

fn res(o: Output) -> BuildResult {
    BuildResult {
        ok: o.status.success(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn warning_lines(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.contains("local cache")).count()
}

/// Checks the directory after sgcache ran on a broken disk; returns problems.
fn after_checks(dir: &Path, stderr: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let c = check_cache(dir);
    if c.temps > 0 {
        bad.push(format!("{} temp files left", c.temps));
    }
    bad.extend(c.corrupt);
    let (_, v) = sgcache_verify(dir);
    for p in v["problems"].as_array().into_iter().flatten() {
        bad.push(format!("verify: {p}"));
    }
    if warning_lines(stderr) > 1 {
        bad.push(format!("more than one warning line:\n{stderr}"));
    }
    bad
}

/// Cold build on a tmpfs of `size`: the plain go command, then sgcache on a fresh one.
#[test]
fn full_disk_mid_build() {
    if !have_go("full_disk_mid_build") {
        return;
    }
    let sizes: &[&str] = if crate::common::full() {
        &["1m", "2m", "3m", "4m", "6m", "8m", "12m", "16m"]
    } else {
        &["3m"]
    };
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    write_module(&module);
    let exe = tmp.path().join("hello");
    let (mut plain_ok, mut sg_ok, mut worse) = (0, 0, 0);
    let mut problems = Vec::new();
    for size in sizes {
        let mnt = tmp.path().join(format!("plain-{size}"));
        let Some(fs) = Tmpfs::mount("full_disk_mid_build", &mnt, size) else {
            return;
        };
        let plain = build(&module, &fs.dir.join("cache"), false, &exe);
        drop(fs);
        let mnt = tmp.path().join(format!("sg-{size}"));
        let fs = Tmpfs::mount("full_disk_mid_build", &mnt, size).unwrap();
        let dir = fs.dir.join("cache");
        let sg = build(&module, &dir, true, &exe);
        plain_ok += usize::from(plain.ok);
        sg_ok += usize::from(sg.ok);
        eprintln!(
            "full disk {size}: plain go {}, sgcache {}",
            if plain.ok { "ok" } else { "FAILED" },
            if sg.ok { "ok" } else { "FAILED" }
        );
        if !plain.ok {
            eprintln!("  plain go: {}", plain.stderr.lines().last().unwrap_or(""));
        }
        if !sg.ok {
            eprintln!("  sgcache: {}", sg.stderr.lines().last().unwrap_or(""));
        }
        if plain.ok && !sg.ok {
            worse += 1;
            problems.push(format!(
                "{size}: the plain go command passed, sgcache failed:\n{}",
                sg.stderr
            ));
        }
        // A second build on the same full disk must behave the same or better.
        let again = build(&module, &dir, true, &exe);
        if sg.ok && !again.ok {
            problems.push(format!("{size}: second build failed:\n{}", again.stderr));
        }
        // One warning line per sgcache process (each build starts one).
        for p in after_checks(&dir, &sg.stderr) {
            problems.push(format!("{size}: {p}"));
        }
        if warning_lines(&again.stderr) > 1 {
            problems.push(format!(
                "{size}: more than one warning line:\n{}",
                again.stderr
            ));
        }
    }
    eprintln!(
        "full disk: {} sizes, plain go passed {plain_ok}, sgcache passed {sg_ok}, builds sgcache \
         failed that plain go passed: {worse}, other problems: {}",
        sizes.len(),
        problems.len() - worse
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A disk that is already full when the build starts. The go command's module index
/// (`modindex.openIndexPackage`) fails the build when its put fails, with or without sgcache;
/// sgcache must do no worse than the plain go command and leave nothing behind.
#[test]
fn disk_full_from_the_start() {
    if !have_go("disk_full_from_the_start") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    write_module(&module);
    let exe = tmp.path().join("hello");
    let mut results = Vec::new();
    for prog in [false, true] {
        let mnt = tmp.path().join(format!("full-{prog}"));
        let Some(fs) = Tmpfs::mount("disk_full_from_the_start", &mnt, "2m") else {
            return;
        };
        let dir = fs.dir.join("cache");
        for i in 0..=255u8 {
            std::fs::create_dir_all(dir.join(format!("{i:02x}"))).unwrap();
        }
        // Fill every byte that is left.
        let mut f = std::fs::File::create(fs.dir.join("fill")).unwrap();
        let block = vec![0u8; 64 << 10];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
        drop(f);
        let r = build(&module, &dir, prog, &exe);
        eprintln!(
            "disk full from the start, {}: {} ({})",
            if prog { "sgcache" } else { "plain go" },
            if r.ok { "ok" } else { "failed" },
            r.stderr.lines().last().unwrap_or("")
        );
        if prog {
            let bad = after_checks(&dir, &r.stderr);
            assert!(bad.is_empty(), "{bad:?}");
        }
        results.push(r.ok);
    }
    assert!(
        results[1] || !results[0],
        "plain go passed on a full disk, sgcache failed"
    );
}

/// A directory that turns read-only: before a build (warm cache, edited module) and in the
/// middle of a cold build.
#[test]
fn read_only_disk() {
    if !have_go("read_only_disk") {
        return;
    }
    let n = trials(1, 5);
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    write_module(&module);
    let exe = tmp.path().join("hello");
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    for trial in 0..n {
        for prog in [false, true] {
            let who = if prog { "sgcache" } else { "plain go" };
            // Before: warm, then read-only, then an edited module.
            let mnt = tmp.path().join(format!("ro-{trial}-{prog}"));
            let Some(fs) = Tmpfs::mount("read_only_disk", &mnt, "128m") else {
                return;
            };
            let dir = fs.dir.join("cache");
            let warm = build(&module, &dir, prog, &exe);
            assert!(warm.ok, "{who} warm build: {}", warm.stderr);
            assert!(fs.remount(true), "remount ro");
            crate::common::write_file(
                &module,
                "lib/a/a.go",
                &format!(
                    "package a\n\nimport \"strings\"\n\n// Upper upper-cases.\nfunc Upper(s string) string {{ return strings.ToUpper(s) + \"{trial}\" }}\n"
                ),
            );
            let ro = build(&module, &dir, prog, &exe);
            crate::common::write_module(&module);
            rows.push((who, "read-only before the build", ro.ok));
            if prog {
                problems.extend(after_checks(&dir, &ro.stderr));
            }
            if !ro.ok {
                eprintln!("{who}, read-only before: {}", ro.stderr.trim());
            }
            drop(fs);

            // During: a cold build, the directory turns read-only after 300-1500 ms.
            let mnt = tmp.path().join(format!("ro-mid-{trial}-{prog}"));
            let fs = Tmpfs::mount("read_only_disk", &mnt, "128m").unwrap();
            let dir = fs.dir.join("cache");
            let mut c = go(&module, &dir, prog);
            c.args(["build", "-o"]).arg(&exe).arg("./cmd/hello");
            let child = c
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(300 + 300 * trial as u64));
            // A remount to read-only fails (EBUSY) while a file on it is open for writing:
            // retry until it lands; a build that finished first still counts (it saw a
            // writable directory throughout, which the row below records as such).
            let mut turned = false;
            for _ in 0..500 {
                if fs.remount(true) {
                    turned = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if !turned {
                eprintln!("{who}, trial {trial}: the directory could not be made read-only");
            }
            let mid = res(child.wait_with_output().unwrap());
            rows.push((who, "turns read-only mid-build", mid.ok));
            if !mid.ok {
                eprintln!("{who}, read-only mid-build: {}", mid.stderr.trim());
            }
            if prog {
                problems.extend(after_checks(&dir, &mid.stderr));
            }
            drop(fs);
        }
    }
    let count = |who: &str, what: &str| {
        rows.iter()
            .filter(|r| r.0 == who && r.1 == what && r.2)
            .count()
    };
    for what in ["read-only before the build", "turns read-only mid-build"] {
        let (p, s) = (count("plain go", what), count("sgcache", what));
        eprintln!("read-only ({what}): {n} trials, plain go passed {p}, sgcache passed {s}");
        if s < p {
            problems.push(format!("{what}: sgcache passed {s} builds, plain go {p}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
