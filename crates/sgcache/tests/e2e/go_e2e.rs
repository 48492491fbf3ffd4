//! End to end with the real go command on this machine.
#![allow(clippy::print_stderr)]

use std::path::Path;

use crate::common::{compiles, go, have_go, run_ok, write_cgo_module, write_module};

fn build_x(module: &Path, cache: &Path, prog: bool) -> std::process::Output {
    let mut c = go(module, cache, prog);
    c.args(["build", "-x", "-o", "/dev/null", "./..."]);
    c.env("SGCACHE_VERBOSE", "1");
    run_ok(c)
}

/// Two builds through sgcache, then the plain go command on the same directory.
#[test]
fn build_twice_then_plain_go_reads_the_same_cache() {
    if !have_go("build_twice_then_plain_go_reads_the_same_cache") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    let cache = tmp.path().join("cache");
    write_module(&module);

    let first = build_x(&module, &cache, true);
    assert!(compiles(&first.stderr) > 0, "a cold build compiles");
    let second = build_x(&module, &cache, true);
    assert_eq!(
        compiles(&second.stderr),
        0,
        "second build through sgcache compiled something:\n{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let summary = String::from_utf8_lossy(&second.stderr);
    assert!(
        summary.contains("sgcache: "),
        "SGCACHE_VERBOSE summary line: {summary}"
    );

    let plain = build_x(&module, &cache, false);
    assert_eq!(
        compiles(&plain.stderr),
        0,
        "plain go after sgcache compiled something"
    );

    // The binary works.
    let exe = tmp.path().join("hello");
    let mut c = go(&module, &cache, true);
    c.args(["build", "-o"]).arg(&exe).arg("./cmd/hello");
    run_ok(c);
    let out = run_ok(std::process::Command::new(&exe));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello GOPHER\n");

    // Nothing in the directory is corrupt.
    let v = run_ok({
        let mut c = std::process::Command::new(crate::common::bin());
        c.args(["verify", "--json", "--grace", "0s"])
            .env("SGCACHE_DIR", &cache);
        c
    });
    let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(report["problems"].as_array().unwrap().len(), 0, "{report}");
    assert!(report["outputs_checked"].as_u64().unwrap() > 10, "{report}");
}

/// A cache filled by the plain go command serves sgcache with hits only.
#[test]
fn plain_go_cache_serves_sgcache() {
    if !have_go("plain_go_cache_serves_sgcache") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    let cache = tmp.path().join("cache");
    write_module(&module);
    build_x(&module, &cache, false);
    let through = build_x(&module, &cache, true);
    assert_eq!(compiles(&through.stderr), 0);
    let text = String::from_utf8_lossy(&through.stderr);
    let summary = text
        .lines()
        .find(|l| l.starts_with("sgcache: "))
        .expect("summary line");
    assert!(summary.contains(" hits"), "{summary}");
    assert!(!summary.contains("(0 hits"), "{summary}");
}

/// `go test` twice prints (cached); `go clean -testcache` makes it run again.
#[test]
fn test_results_are_cached_and_testcache_clean_works() {
    if !have_go("test_results_are_cached_and_testcache_clean_works") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    let cache = tmp.path().join("cache");
    write_module(&module);
    let test = || {
        let mut c = go(&module, &cache, true);
        c.args(["test", "./lib/..."]);
        String::from_utf8_lossy(&run_ok(c).stdout).into_owned()
    };
    let first = test();
    assert!(!first.contains("(cached)"), "{first}");
    let second = test();
    assert!(second.contains("(cached)"), "{second}");
    let mut clean = go(&module, &cache, true);
    clean.args(["clean", "-testcache"]);
    run_ok(clean);
    let third = test();
    assert!(
        !third.contains("(cached)"),
        "after go clean -testcache: {third}"
    );
}

/// Seed 000's regression (golang/go#29667): concurrent `go list -compiled` on a cgo
/// package against one fresh directory, through sgcache.
#[test]
fn concurrent_go_list_compiled_cgo() {
    if !have_go("concurrent_go_list_compiled_cgo") {
        return;
    }
    if std::process::Command::new("gcc")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIP concurrent_go_list_compiled_cgo: no C compiler for cgo");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("cgo");
    let cache = tmp.path().join("cache");
    write_cgo_module(&module);
    let children: Vec<_> = (0..20)
        .map(|_| {
            let mut c = go(&module, &cache, true);
            c.env("CGO_ENABLED", "1").args([
                "list",
                "-json",
                "-compiled",
                "-test=false",
                "-export=false",
                "-deps=true",
                ".",
            ]);
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "stderr not empty: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `SGCACHE_DIR` apart from `GOCACHE`: sgcache lays out its own directory like Go's (the 256
/// subdirectories), and `sgcache stats` shows what the builds put there and this machine's
/// counters (added right after each go command's close, so polled for briefly).
#[test]
fn separate_dir_and_stats_counters() {
    if !have_go("separate_dir_and_stats_counters") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    let gocache = tmp.path().join("gocache");
    let dir = tmp.path().join("sgdir");
    write_module(&module);
    let build = || {
        let mut c = go(&module, &gocache, true);
        c.env("SGCACHE_DIR", &dir)
            .args(["build", "-x", "-o", "/dev/null", "./..."]);
        run_ok(c)
    };
    assert!(compiles(&build().stderr) > 0, "a cold build compiles");
    assert_eq!(compiles(&build().stderr), 0, "second build is all hits");
    for i in 0..=255u8 {
        assert!(
            dir.join(format!("{i:02x}")).is_dir(),
            "subdirectory {i:02x}"
        );
    }
    assert!(dir.join("README").is_file());

    let stats = || -> serde_json::Value {
        let mut c = std::process::Command::new(crate::common::bin());
        c.args(["stats", "--json"]).env("SGCACHE_DIR", &dir);
        serde_json::from_slice(&run_ok(c).stdout).unwrap()
    };
    let mut s = stats();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while s["counters"]["hits"].as_u64().unwrap_or(0) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        s = stats();
    }
    let c = &s["counters"];
    assert!(s["actions"].as_u64().unwrap() > 5, "{s}");
    assert!(c["puts"].as_u64().unwrap() > 5, "{s}");
    assert!(c["hits"].as_u64().unwrap() > 5, "{s}");
    assert!(
        c["gets"].as_u64().unwrap() >= c["hits"].as_u64().unwrap() + c["misses"].as_u64().unwrap(),
        "{s}"
    );
    assert!(
        !gocache.join("sgcache").exists(),
        "nothing of sgcache's goes to GOCACHE when SGCACHE_DIR is set"
    );
}
