//! Version compatibility: the go command on this machine and Go 1.23 (built with
//! `GOEXPERIMENT=cacheprog` by `scripts/go123.sh`, speaking the protocol with `ObjectID`) both
//! build and test a module through sgcache, sharing one local directory; each rebuild is all
//! hits, the plain Go 1.23 reads the directory too, and nothing in it is corrupt.
//!
//! The Go 1.23 toolchain is `$SGCACHE_GO123` (a GOROOT; the test fails if it is set and
//! wrong) or `~/.cache/sgcache-ci/go1.23-cacheprog`; without either the test skips and says
//! how to get it: `bash scripts/go123.sh`.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{check_cache, compiles, go, have_go, run_ok, sgcache_verify, write_module};

fn go123_root() -> Option<PathBuf> {
    if let Ok(v) = std::env::var("SGCACHE_GO123")
        && !v.is_empty()
    {
        let p = PathBuf::from(v);
        assert!(
            p.join("bin/go").is_file(),
            "SGCACHE_GO123={} has no bin/go; run `bash scripts/go123.sh`",
            p.display()
        );
        return Some(p);
    }
    let cache = std::env::var_os("SGCACHE_CI_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sgcache-ci")))?;
    let p = cache.join("go1.23-cacheprog");
    p.join("bin/go").is_file().then_some(p)
}

/// `crate::common::go` with the Go 1.23 binary instead of the one on PATH.
fn go123(goroot: &Path, dir: &Path, cache: &Path, prog: bool) -> Command {
    let mut c = go(dir, cache, prog);
    let mut full = Command::new(goroot.join("bin/go"));
    full.current_dir(dir);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => full.env(k, v),
            None => full.env_remove(k),
        };
    }
    full.env_remove("GOROOT");
    // Keep PATH (gcc, the shell) but put Go 1.23 first.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![goroot.join("bin")];
    paths.extend(std::env::split_paths(&path));
    full.env("PATH", std::env::join_paths(paths).unwrap());
    let _ = &mut c;
    full
}

fn version(mut c: Command) -> String {
    c.args(["env", "GOVERSION"]);
    String::from_utf8_lossy(&run_ok(c).stdout).trim().to_owned()
}

#[test]
fn go_1_23_and_this_go_share_one_directory() {
    if !have_go("go_1_23_and_this_go_share_one_directory") {
        return;
    }
    let Some(root) = go123_root() else {
        eprintln!(
            "SKIP go_1_23_and_this_go_share_one_directory: no Go 1.23 cacheprog toolchain (set \
             SGCACHE_GO123=$(bash scripts/go123.sh) to run it)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    let cache = tmp.path().join("cache");
    let exe = tmp.path().join("hello");
    write_module(&module);
    let new = version(go(&module, &cache, false));
    let old = version(go123(&root, &module, &cache, false));
    assert!(old.starts_with("go1.23"), "{old}");

    let step = |label: &str, mut c: Command, args: &[&str]| -> std::process::Output {
        c.args(args).env("SGCACHE_VERBOSE", "1");
        let out = run_ok(c);
        eprintln!(
            "compat: {label} {}: {} compiles; {}",
            args.join(" "),
            compiles(&out.stderr),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .find(|l| l.starts_with("sgcache: "))
                .unwrap_or("(no sgcache summary: plain go)")
        );
        out
    };
    let exe_s = exe.to_str().unwrap();
    let build: &[&str] = &["build", "-x", "-o", exe_s, "./cmd/hello"];
    let test: &[&str] = &["test", "-x", "./..."];

    // Each version through sgcache on the same directory, cold then warm.
    for (label, mk) in [
        (
            new.as_str(),
            Box::new(|| go(&module, &cache, true)) as Box<dyn Fn() -> Command>,
        ),
        (
            old.as_str(),
            Box::new(|| go123(&root, &module, &cache, true)),
        ),
    ] {
        step(label, mk(), build);
        assert_eq!(
            String::from_utf8_lossy(&run_ok(Command::new(&exe)).stdout),
            "hello GOPHER\n"
        );
        step(label, mk(), test);
        let again = step(label, mk(), build);
        assert_eq!(compiles(&again.stderr), 0, "{label}: warm build compiled");
    }
    // Then the other order: this go after 1.23 wrote, still all hits; plain 1.23 reads it.
    let again = step(&new, go(&module, &cache, true), build);
    assert_eq!(compiles(&again.stderr), 0, "{new} after {old}: compiled");
    let plain = step(
        &format!("{old} (plain)"),
        go123(&root, &module, &cache, false),
        build,
    );
    assert_eq!(compiles(&plain.stderr), 0, "plain {old} compiled");

    let check = check_cache(&cache);
    let (problems, v) = sgcache_verify(&cache);
    eprintln!(
        "compat: {new} and {old} through sgcache on one directory: builds and tests passed, \
         warm rebuilds all hits, {} index entries, {} corrupt, {problems} verify problems",
        check.valid_actions,
        check.corrupt.len()
    );
    assert!(check.corrupt.is_empty(), "{:?}", check.corrupt);
    assert_eq!(problems, 0, "{}", v["problems"]);
}
