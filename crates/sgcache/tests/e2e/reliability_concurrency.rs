//! Concurrency: many go commands (builds, tests, `go list -compiled`) through sgcache on one
//! directory, plain go commands writing the same directory at the same time, and
//! `sgcache trim --max-size` running in a loop throughout. Zero failed go commands, zero
//! corrupt entries.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::common::{check_cache, go, have_go, sgcache_verify, trials, write_file, write_module};

/// A copy of the test module whose output depends on `n`.
fn module(root: &Path, n: usize) -> PathBuf {
    let m = root.join(format!("m{n}"));
    write_module(&m);
    write_file(
        &m,
        "lib/a/a.go",
        &format!(
            "package a\n\nimport \"strings\"\n\n// Upper upper-cases.\nfunc Upper(s string) string {{ return strings.ToUpper(s) + \"{n}\" }}\n"
        ),
    );
    write_file(
        &m,
        "lib/a/a_test.go",
        &format!(
            "package a\n\nimport \"testing\"\n\nfunc TestUpper(t *testing.T) {{\n\tif Upper(\"x\") != \"X{n}\" {{\n\t\tt.Fatal(\"bad\")\n\t}}\n}}\n"
        ),
    );
    m
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else {
                total += md.len();
            }
        }
    }
    total
}

/// Starts command `i` of a round: build, test or `go list -compiled`, through sgcache or
/// (every 7th) the plain go command.
fn start(root: &Path, cache: &Path, i: usize) -> (String, Child) {
    // Written once before the storm: rewriting sources under running go commands would fail
    // them for reasons that have nothing to do with the cache.
    let m = root.join(format!("m{}", i % 5));
    let plain = i % 7 == 6;
    let mut c = go(&m, cache, !plain);
    let what = match i % 3 {
        0 => {
            c.args(["build", "-o", "/dev/null", "./..."]);
            "build"
        }
        1 => {
            c.args(["test", "-count=1", "./lib/..."]);
            "test"
        }
        _ => {
            c.args(["list", "-compiled", "-export", "-json", "-deps", "./..."]);
            "list -compiled -export"
        }
    };
    let label = format!(
        "#{i} go {what} in m{} ({})",
        i % 5,
        if plain { "plain go" } else { "sgcache" }
    );
    let child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (label, child)
}

/// 20 concurrent go commands through sgcache (every 7th the plain go command) on one
/// directory (reduced: 8).
#[test]
fn concurrent_go_commands_on_one_directory() {
    if !have_go("concurrent_go_commands_on_one_directory") {
        return;
    }
    storm(false);
}

/// The same with `sgcache trim --max-size` (half the warm size) in a loop. Regression test
/// for: the size cap removes entries a running go command was just given as hits (their
/// mtime is refreshed at most hourly, so "least recently used" by mtime includes entries in
/// use), and the compile that reads them fails with "could not import … no such file".
#[test]
fn size_trim_loop_does_not_fail_running_go_commands() {
    if !have_go("size_trim_loop_does_not_fail_running_go_commands") {
        return;
    }
    storm(true);
}

fn storm(with_trim: bool) {
    let (width, rounds) = (trials(8, 20), trials(1, 3));
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    // Warm: the std packages are in the directory before the storm.
    for n in 0..5 {
        module(tmp.path(), n);
    }
    let mut w = go(&tmp.path().join("m0"), &cache, true);
    w.args(["build", "-o", "/dev/null", "./..."]);
    crate::common::run_ok(w);
    // A cap of half the warm size: every trim pass evicts something the go commands use.
    let cap = dir_bytes(&cache) / 2;

    let stop = Arc::new(AtomicBool::new(false));
    let trims = Arc::new(AtomicUsize::new(0));
    let trim_failures = Arc::new(AtomicUsize::new(0));
    let trimmer = {
        let (stop, trims, trim_failures, cache) = (
            stop.clone(),
            trims.clone(),
            trim_failures.clone(),
            cache.clone(),
        );
        std::thread::spawn(move || {
            while with_trim && !stop.load(Ordering::Relaxed) {
                let st = Command::new(crate::common::bin())
                    .args(["trim", "--max-size"])
                    .arg(cap.to_string())
                    .env("SGCACHE_DIR", &cache)
                    .env_remove("SGCACHE_REMOTE")
                    .stdout(Stdio::null())
                    .status()
                    .unwrap();
                trims.fetch_add(1, Ordering::Relaxed);
                if !st.success() {
                    trim_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    let mut failed = Vec::new();
    let mut total = 0;
    for round in 0..rounds {
        let children: Vec<_> = (0..width)
            .map(|i| start(tmp.path(), &cache, round * width + i))
            .collect();
        for (label, child) in children {
            total += 1;
            let out = child.wait_with_output().unwrap();
            if !out.status.success() {
                failed.push(format!(
                    "{label}: {}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    trimmer.join().unwrap();
    let check = check_cache(&cache);
    let (verify_problems, v) = sgcache_verify(&cache);
    eprintln!(
        "concurrency{}: {rounds} rounds of {width} concurrent go commands ({total} in all; builds, \
         tests, list -compiled -export; every 7th the plain go command) on one directory, with \
         `sgcache trim --max-size {cap}` run {} times meanwhile ({} failed): {} failed go \
         commands, {} corrupt entries, {} verify problems",
        if with_trim { " + trim loop" } else { "" },
        trims.load(Ordering::Relaxed),
        trim_failures.load(Ordering::Relaxed),
        failed.len(),
        check.corrupt.len(),
        verify_problems
    );
    assert!(
        failed.is_empty() && check.corrupt.is_empty() && verify_problems == 0,
        "failed go commands:\n{}\ncorrupt: {:?}\nverify: {}",
        failed.join("\n"),
        check.corrupt,
        v["problems"]
    );
}
