//! `sgcache explain` with the real go command and real modules: every scenario of issue 15's
//! "How it must be proven" list. Each test records a baseline with one go command, changes
//! one thing (the checkout path, CGO_ENABLED, a leaf package, a test file's mtime, the
//! machine, an entry in the remote), explains the next run, and checks the root cause it
//! names, from the `--json` report (and the text one where a person reads it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::common::{bin, go, go_remote, have_go, run_ok, write_file};

/// `sgcache <args>` in `go`'s directory with `go`'s hermetic environment (so the go command
/// explain runs is the one the test would have run), and no GODEBUG of the test runner's.
fn sgcache(go: &Command, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    if let Some(d) = go.get_current_dir() {
        c.current_dir(d);
    }
    for (k, v) in go.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.env_remove("GODEBUG").env_remove("SGCACHE_LOG").args(args);
    c
}

/// Runs `sgcache explain --json … -- go <go_args>` and returns the report.
fn explain_json(go: &Command, extra: &[&str], go_args: &[&str]) -> (Value, Output) {
    let mut args = vec!["explain", "--json"];
    args.extend_from_slice(extra);
    args.push("--");
    args.push("go");
    args.extend_from_slice(go_args);
    let out = sgcache(go, &args).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "explain's stdout is not one JSON document ({e}):\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out)
}

/// `sgcache explain record -- go <go_args>`, required to succeed.
fn record(go: &Command, extra: &[&str], go_args: &[&str]) -> Output {
    let mut args = vec!["explain", "record"];
    args.extend_from_slice(extra);
    args.push("--");
    args.push("go");
    args.extend_from_slice(go_args);
    let out = run_ok(sgcache(go, &args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sgcache explain: recorded"), "{err}");
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The classes of the report's root-cause groups.
fn classes(r: &Value) -> Vec<String> {
    r["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no groups in {r:#}"))
        .iter()
        .map(|g| g["class"].as_str().unwrap().to_owned())
        .collect()
}

/// Every root cause as `mode package`.
fn root_causes(r: &Value) -> Vec<String> {
    let mut v: Vec<String> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["root_causes"].as_array().unwrap().iter())
        .map(|rc| {
            format!(
                "{} {}",
                rc["action"]["mode"].as_str().unwrap(),
                rc["action"]["package"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

fn cascades(r: &Value) -> Vec<String> {
    r["cascades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["action"]["mode"].as_str().unwrap(),
                c["action"]["package"].as_str().unwrap()
            )
        })
        .collect()
}

fn summary(r: &Value, k: &str) -> u64 {
    r["summary"][k]
        .as_u64()
        .unwrap_or_else(|| panic!("summary.{k} in {r:#}"))
}

/// leaf ← mid ← top (and, with `main`, a binary importing top). Nothing from std but what
/// `main` needs, so a cold build is a few compiles.
fn write_levels(root: &Path, leaf_value: u32, main: bool) {
    write_file(root, "go.mod", "module example.com/lv\n\ngo 1.21\n");
    write_file(
        root,
        "leaf/leaf.go",
        &format!(
            "package leaf\n\n// V is the leaf's value.\nfunc V() int {{ return {leaf_value} }}\n"
        ),
    );
    write_file(
        root,
        "mid/mid.go",
        "package mid\n\nimport \"example.com/lv/leaf\"\n\n// M doubles the leaf.\nfunc M() int { return 2 * leaf.V() }\n",
    );
    write_file(
        root,
        "top/top.go",
        "package top\n\nimport \"example.com/lv/mid\"\n\n// T adds one.\nfunc T() int { return mid.M() + 1 }\n",
    );
    if main {
        write_file(
            root,
            "cmd/app/main.go",
            "package main\n\nimport \"example.com/lv/top\"\n\nfunc main() { println(top.T()) }\n",
        );
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::create_dir_all(to).unwrap();
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn set_mtime(p: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Two checkouts of one module at different paths, no -trimpath: every package misses, and
/// `dir` is the one root cause class, naming each package; with -trimpath nothing misses.
#[test]
fn two_checkouts_without_trimpath_name_dir() {
    if !have_go("two_checkouts_without_trimpath_name_dir") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("ci/a/lv"), tmp.path().join("ci/b/lv"));
    write_levels(&a, 1, false);
    copy_tree(&a, &b);
    let cache = tmp.path().join("cache");
    record(&go(&a, &cache, false), &[], &["build", "./..."]);

    let (r, out) = explain_json(&go(&b, &cache, false), &[], &["build", "./..."]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(classes(&r), ["dir"], "{r:#}");
    assert_eq!(
        root_causes(&r),
        [
            "build example.com/lv/leaf",
            "build example.com/lv/mid",
            "build example.com/lv/top"
        ]
    );
    assert_eq!(summary(&r, "missed"), 3, "{r:#}");
    let g = &r["groups"][0];
    assert!(g["remedy"].as_str().unwrap().contains("-trimpath"), "{g:#}");
    let c = &g["root_causes"][0]["changes"][0];
    assert_eq!(c["key"], "dir");
    assert!(
        c["baseline"].as_str().unwrap().contains("/ci/a/lv/"),
        "{c:#}"
    );
    assert!(c["now"].as_str().unwrap().contains("/ci/b/lv/"), "{c:#}");

    // The remedy works: recorded and explained with -trimpath, the other checkout hits.
    record(
        &go(&a, &cache, false),
        &[],
        &["build", "-trimpath", "./..."],
    );
    let (r, _) = explain_json(
        &go(&b, &cache, false),
        &[],
        &["build", "-trimpath", "./..."],
    );
    assert_eq!(summary(&r, "missed"), 0, "{r:#}");
}

/// CGO_ENABLED=0 in the baseline, 1 now: the root cause is environment skew in the std
/// packages that have cgo files (os/user here), and the module's packages are cascades.
#[test]
fn cgo_enabled_skew_is_env() {
    if !have_go("cgo_enabled_skew_is_env") {
        return;
    }
    if !Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!(
            "SKIP cgo_enabled_skew_is_env: no C compiler (`cc`), so CGO_ENABLED=1 cannot build"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("u");
    write_file(&m, "go.mod", "module example.com/u\n\ngo 1.21\n");
    write_file(
        &m,
        "u/u.go",
        "package u\n\nimport \"os/user\"\n\n// Name is the user's name.\nfunc Name() string {\n\tu, err := user.Current()\n\tif err != nil {\n\t\treturn \"\"\n\t}\n\treturn u.Username\n}\n",
    );
    write_file(
        &m,
        "w/w.go",
        "package w\n\nimport \"example.com/u/u\"\n\n// W wraps.\nfunc W() string { return u.Name() }\n",
    );
    let cache = tmp.path().join("cache");
    let mut g0 = go(&m, &cache, false);
    g0.env("CGO_ENABLED", "0");
    record(&g0, &[], &["build", "./..."]);
    let mut g1 = go(&m, &cache, false);
    g1.env("CGO_ENABLED", "1");
    let (r, out) = explain_json(&g1, &[], &["build", "./..."]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(classes(&r), ["env"], "{r:#}");
    assert_eq!(root_causes(&r), ["build os/user"], "{r:#}");
    let rc = &r["groups"][0]["root_causes"][0];
    assert!(
        rc["changes"][0]["what"]
            .as_str()
            .unwrap()
            .contains("CGO_ENABLED"),
        "{rc:#}"
    );
    assert!(
        r["groups"][0]["remedy"]
            .as_str()
            .unwrap()
            .contains("CGO_ENABLED")
    );
    let c = cascades(&r);
    for p in ["build example.com/u/u", "build example.com/u/w"] {
        assert!(c.iter().any(|x| x == p), "{p} not a cascade: {c:?}");
    }
}

/// A one-line change in the leaf of a 3-level module: exactly that package is the root
/// cause; its importers' compiles and every vet are cascades, not root causes.
#[test]
fn leaf_change_is_the_only_root_cause() {
    if !have_go("leaf_change_is_the_only_root_cause") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("lv");
    write_levels(&m, 1, true);
    let cache = tmp.path().join("cache");
    record(&go(&m, &cache, false), &[], &["vet", "./..."]);
    write_levels(&m, 2, true);

    let (r, out) = explain_json(&go(&m, &cache, false), &[], &["vet", "./..."]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(root_causes(&r), ["build example.com/lv/leaf"], "{r:#}");
    assert_eq!(classes(&r), ["source"]);
    let rc = &r["groups"][0]["root_causes"][0];
    assert_eq!(rc["changes"][0]["key"], "file leaf.go", "{rc:#}");
    let c = cascades(&r);
    // go vet compiles what the vets import (cmd/app only needs vetting).
    for p in [
        "build example.com/lv/mid",
        "build example.com/lv/top",
        "vet example.com/lv/leaf",
        "vet example.com/lv/mid",
        "vet example.com/lv/top",
        "vet example.com/lv/cmd/app",
    ] {
        assert!(c.iter().any(|x| x == p), "{p} not a cascade: {c:?}");
    }
    assert_eq!(summary(&r, "cascades") as usize, c.len());
    assert_eq!(summary(&r, "missed") as usize, c.len() + 1, "{r:#}");
    let invalidated = rc["invalidated"].as_array().unwrap().len();
    assert_eq!(invalidated, c.len(), "{rc:#}");

    // The text a person reads, after another leaf change.
    write_levels(&m, 3, true);
    let out = sgcache(
        &go(&m, &cache, false),
        &["explain", "--", "go", "vet", "./..."],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    let text = stderr(&out);
    assert!(text.contains("1 root cause"), "{text}");
    assert!(text.contains("source — 1 root cause"), "{text}");
    assert!(text.contains("example.com/lv/leaf\n"), "{text}");
    assert!(text.contains("file leaf.go"), "{text}");
    assert!(text.contains("invalidated"), "{text}");
}

/// A test that reads testdata/ in a fresh checkout (another path, new mtimes; -trimpath, so
/// the builds hit): go test misses its cached result, and explain names the file, both
/// mtimes and canonical mtimes as the remedy. Also: a recorded `go test` leaves results a
/// plain `go test` uses (explain's GODEBUG is part of every test's key).
#[test]
fn fresh_checkout_testdata_mtime() {
    if !have_go("fresh_checkout_testdata_mtime") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a/td");
    write_file(&a, "go.mod", "module example.com/td\n\ngo 1.21\n");
    write_file(
        &a,
        "td.go",
        "package td\n\n// Two is 2.\nfunc Two() int { return 2 }\n",
    );
    write_file(
        &a,
        "td_test.go",
        "package td\n\nimport (\n\t\"os\"\n\t\"testing\"\n)\n\nfunc TestData(t *testing.T) {\n\tb, err := os.ReadFile(\"testdata/golden.txt\")\n\tif err != nil || len(b) == 0 || Two() != 2 {\n\t\tt.Fatal(err)\n\t}\n}\n",
    );
    write_file(&a, "testdata/golden.txt", "golden\n");
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    set_mtime(&a.join("testdata/golden.txt"), hour_ago);
    let cache = tmp.path().join("cache");
    let test = ["test", "-trimpath", "./..."];
    record(&go(&a, &cache, false), &[], &test);
    // The recorded run's results serve a plain go test.
    let mut plain = go(&a, &cache, false);
    plain.args(test);
    let text = String::from_utf8_lossy(&run_ok(plain).stdout).into_owned();
    assert!(
        text.contains("(cached)"),
        "a plain go test after record: {text}"
    );

    // The fresh checkout: same bytes, other path, testdata written a minute ago.
    let b = tmp.path().join("b/td");
    copy_tree(&a, &b);
    set_mtime(
        &b.join("testdata/golden.txt"),
        SystemTime::now() - Duration::from_secs(60),
    );
    let (r, out) = explain_json(&go(&b, &cache, false), &[], &test);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ok  \texample.com/td"),
        "the go command's stdout goes to stderr with --json: {}",
        stderr(&out)
    );
    assert_eq!(summary(&r, "missed"), 1, "{r:#}");
    assert_eq!(classes(&r), ["test-input"], "{r:#}");
    assert_eq!(root_causes(&r), ["test example.com/td"]);
    let g = &r["groups"][0];
    let what = g["root_causes"][0]["changes"][0]["what"].as_str().unwrap();
    assert!(what.contains("testdata/golden.txt"), "{what}");
    assert!(what.contains("modification time"), "{what}");
    assert!(
        g["remedy"]
            .as_str()
            .unwrap()
            .contains("canonical modification time"),
        "{g:#}"
    );
    let detail = &g["root_causes"][0]["changes"][0]["detail"];
    assert_ne!(detail[0], detail[1], "both mtimes: {detail:#}");

    // And the explained run, too, left a result a plain run uses.
    let mut plain = go(&b, &cache, false);
    plain.args(test);
    let text = String::from_utf8_lossy(&run_ok(plain).stdout).into_owned();
    assert!(
        text.contains("(cached)"),
        "a plain go test after explain: {text}"
    );
}

fn keygen() -> (String, String) {
    let out = run_ok({
        let mut c = Command::new(bin());
        c.arg("keygen");
        c
    });
    let text = String::from_utf8(out.stdout).unwrap();
    let mut l = text.lines();
    let s = l
        .next()
        .unwrap()
        .strip_prefix("SGCACHE_SIGNING_KEY=")
        .unwrap()
        .to_owned();
    let p = l
        .next()
        .unwrap()
        .strip_prefix("SGCACHE_TRUSTED_KEYS=")
        .unwrap()
        .to_owned();
    (s, p)
}

/// Machine A records into the remote's `main` namespace (signed); machine B, fresh, at
/// another path, with no local baseline, explains against it, by default and with
/// `--against main`; a B that does not trust A's key gets no baseline, and says so.
#[test]
fn baseline_from_the_remote() {
    if !have_go("baseline_from_the_remote") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", tmp.path().join("remote").display());
    let (secret, public) = keygen();
    let a = tmp.path().join("a/lv");
    write_levels(&a, 1, false);
    let mut ga = go_remote(&a, &tmp.path().join("cache-a"), &url, "main");
    ga.env("SGCACHE_SIGNING_KEY", &secret);
    let out = record(&ga, &[], &["build", "./..."]);
    assert!(
        stderr(&out).contains("remote namespace main"),
        "{}",
        stderr(&out)
    );

    let b = tmp.path().join("b/lv");
    copy_tree(&a, &b);
    let cache_b = tmp.path().join("cache-b");
    let machine_b = |trusted: &str| {
        let mut g = go_remote(&b, &cache_b, &url, "pr-1");
        g.env("SGCACHE_READ_NAMESPACES", "main")
            .env("SGCACHE_TRUSTED_KEYS", trusted);
        g
    };
    let (r, out) = explain_json(&machine_b(&public), &[], &["build", "./..."]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        r["baseline"]["source"]
            .as_str()
            .unwrap_or("")
            .contains("namespace main"),
        "{r:#}"
    );
    assert_eq!(classes(&r), ["dir"], "{r:#}");
    assert_eq!(summary(&r, "root_causes"), 3);
    assert!(
        !cache_b.join("sgcache/explain").exists(),
        "B had no local baseline"
    );

    let (r, _) = explain_json(
        &machine_b(&public),
        &["--against", "main"],
        &["build", "./..."],
    );
    assert!(
        r["baseline"]["source"]
            .as_str()
            .unwrap_or("")
            .contains("namespace main"),
        "{r:#}"
    );

    // Trusting another key: A's baseline is not used; a message, and the go command's status.
    let (_, other) = keygen();
    let (r, out) = explain_json(
        &machine_b(&other),
        &["--against", "main"],
        &["build", "./..."],
    );
    assert!(out.status.success());
    let err = r["error"].as_str().unwrap_or_else(|| panic!("{r:#}"));
    assert!(err.contains("trusts"), "{err}");
}

/// An entry evicted from the remote, inputs unchanged: "not available", not an input change.
#[test]
fn evicted_entry_is_not_available() {
    if !have_go("evicted_entry_is_not_available") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("remote");
    let url = format!("file://{}", root.display());
    let m = tmp.path().join("lv");
    write_levels(&m, 1, false);
    let out_file = tmp.path().join("a.sgxb");
    record(
        &go_remote(&m, &tmp.path().join("cache-a"), &url, "main"),
        &["--out", out_file.to_str().unwrap()],
        &["build", "./..."],
    );
    // Which remote entry is the leaf's: its action id, from A's baseline.
    let base = sgcache_explain::baseline::decode(&std::fs::read(&out_file).unwrap()).unwrap();
    let leaf = base
        .actions
        .iter()
        .find(|a| a.package == "example.com/lv/leaf" && a.mode == sgcache_explain::Mode::Build)
        .and_then(|a| a.id)
        .expect("the leaf's compile in the baseline");
    let entry: PathBuf = root.join("main/ac").join(leaf.hex());
    assert!(entry.is_file(), "A uploaded {}", entry.display());
    std::fs::remove_file(&entry).unwrap();

    // B: same checkout, fresh local cache, no prefetch (the manifest would bring it back).
    let mut gb = go_remote(&m, &tmp.path().join("cache-b"), &url, "main");
    gb.env("SGCACHE_PREFETCH", "0");
    let (r, out) = explain_json(
        &gb,
        &["--against", out_file.to_str().unwrap()],
        &["build", "./..."],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&r, "missed"), 1, "{r:#}");
    assert_eq!(summary(&r, "root_causes"), 0, "{r:#}");
    assert_eq!(summary(&r, "not_available"), 1, "{r:#}");
    assert_eq!(r["not_available"][0]["package"], "example.com/lv/leaf");
    assert_eq!(r["not_available"][0]["id"], leaf.hex());
}

/// Baselines that are garbage, of another format version, or from another Go version: a
/// clear message or a toolchain root cause, never a panic; the go command's status passes
/// through, a failing build's included.
#[test]
fn bad_baselines_and_failing_builds() {
    if !have_go("bad_baselines_and_failing_builds") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("lv");
    write_levels(&m, 1, false);
    let cache = tmp.path().join("cache");
    let good = tmp.path().join("good.sgxb");
    record(
        &go(&m, &cache, false),
        &["--out", good.to_str().unwrap()],
        &["build", "./..."],
    );
    let bytes = std::fs::read(&good).unwrap();

    let garbage = tmp.path().join("garbage.sgxb");
    std::fs::write(&garbage, b"\x00\x01 not a baseline").unwrap();
    let mut v9 = bytes.clone();
    v9[4] = 9;
    let future = tmp.path().join("v9.sgxb");
    std::fs::write(&future, v9).unwrap();
    let cut = tmp.path().join("cut.sgxb");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    for (file, says) in [
        (&garbage, "not an sgcache explain baseline"),
        (&future, "format version 9"),
        (&cut, "damaged"),
    ] {
        let out = sgcache(
            &go(&m, &cache, false),
            &[
                "explain",
                "--against",
                file.to_str().unwrap(),
                "--",
                "go",
                "build",
                "./...",
            ],
        )
        .output()
        .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{}: {err}", file.display());
        assert!(!err.contains("panicked"), "{err}");
    }

    // Another Go version: every id differs, the compiler's version line too.
    let mut old = sgcache_explain::baseline::decode(&bytes).unwrap();
    let now = old.go_version.clone();
    old.go_version = "go1.19.13".into();
    for a in &mut old.actions {
        for l in &mut a.inputs {
            *l = l.replace(&now, "go1.19.13");
        }
        if let Some(id) = &mut a.id {
            let mut b = id.to_bytes();
            b[0] ^= 0xff;
            *id = sgcache_types::ActionId::from_bytes(b);
        }
    }
    let older = tmp.path().join("go1.19.sgxb");
    std::fs::write(&older, sgcache_explain::baseline::encode(&old)).unwrap();
    write_levels(&m, 2, false);
    let (r, _) = explain_json(
        &go(&m, &cache, false),
        &["--against", older.to_str().unwrap()],
        &["build", "./..."],
    );
    assert!(
        r["notes"][0].as_str().unwrap().contains("go1.19.13"),
        "{r:#}"
    );
    assert_eq!(classes(&r), ["toolchain"], "{r:#}");

    // A build that fails: its errors reach the user, its status is explain's.
    write_file(
        &m,
        "mid/broken.go",
        "package mid\n\nfunc Broken() int { return undefinedThing }\n",
    );
    let out = sgcache(
        &go(&m, &cache, false),
        &[
            "explain",
            "--against",
            good.to_str().unwrap(),
            "--",
            "go",
            "build",
            "./...",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("undefinedThing"), "{err}");
    assert!(err.contains("sgcache explain:"), "{err}");
    assert!(
        !err.contains("HASH["),
        "the transcript is not shown to the user: {err}"
    );
    // A failed run records nothing: the last good baseline stays.
    let out = sgcache(
        &go(&m, &cache, false),
        &[
            "explain",
            "record",
            "--out",
            good.to_str().unwrap(),
            "--",
            "go",
            "build",
            "./...",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no baseline recorded"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&good).unwrap(), bytes);

    // Not a go command, or one that does not build: a usage message before anything runs.
    let out = sgcache(&go(&m, &cache, false), &["explain", "--", "make", "test"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("explain runs one go command"),
        "{}",
        stderr(&out)
    );
}
