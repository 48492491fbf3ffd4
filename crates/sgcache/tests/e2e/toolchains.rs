//! Every Go release line the project supports, through sgcache: 1.24, 1.25 and 1.27 (their
//! newest patches, downloaded by the go command itself, `scripts/go-toolchains.sh`) next to
//! this machine's own go (every other test) and 1.23 built with the cacheprog experiment
//! (`reliability_compat`). For each: a cold build, a rebuild with zero compiles, the plain go
//! command of that version reading the same directory with zero compiles, and a test result
//! cached through sgcache.
#![allow(clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{compiles, go, have_go, run_ok, write_module};

fn go_at(version: &str, module: &Path, cache: &Path, prog: bool) -> Command {
    let mut c = go(module, cache, prog);
    c.env("GOTOOLCHAIN", version);
    c
}

fn run(mut c: Command, args: &[&str]) -> Output {
    c.args(args);
    run_ok(c)
}

#[test]
fn every_supported_go_release_builds_rebuilds_shares_and_caches_tests() {
    if !have_go("every_supported_go_release_builds_rebuilds_shares_and_caches_tests") {
        return;
    }
    let versions = std::env::var("SGCACHE_GO_TOOLCHAINS").unwrap_or_default();
    if versions.trim().is_empty() {
        eprintln!(
            "SKIP every_supported_go_release…: SGCACHE_GO_TOOLCHAINS is not set \
             (scripts/test.sh sets it from scripts/go-toolchains.sh)"
        );
        return;
    }
    for v in versions.split_whitespace() {
        let tmp = tempfile::tempdir().unwrap();
        let module = tmp.path().join("m");
        write_module(&module);
        let cache = tmp.path().join("cache");
        let version = run(go_at(v, &module, &cache, false), &["version"]);
        assert!(
            String::from_utf8_lossy(&version.stdout).contains(&format!("{v} ")),
            "{v}: {}",
            String::from_utf8_lossy(&version.stdout)
        );
        let cold = run(go_at(v, &module, &cache, true), &["build", "-x", "./..."]);
        assert!(
            compiles(&cold.stderr) >= 3,
            "{v}: cold build compiled nothing"
        );
        let warm = run(go_at(v, &module, &cache, true), &["build", "-x", "./..."]);
        assert_eq!(compiles(&warm.stderr), 0, "{v}: rebuild through sgcache");
        let plain = run(go_at(v, &module, &cache, false), &["build", "-x", "./..."]);
        assert_eq!(
            compiles(&plain.stderr),
            0,
            "{v}: the plain go command reads sgcache's entries"
        );
        run(go_at(v, &module, &cache, true), &["test", "./..."]);
        let again = run(go_at(v, &module, &cache, true), &["test", "./..."]);
        let text = String::from_utf8_lossy(&again.stdout);
        assert!(
            text.contains("(cached)"),
            "{v}: test result not cached: {text}"
        );
        eprintln!("toolchains: {v} ok");
    }
}
