//! The go command as the reference for build IDs: a hello-world module, builds of it for
//! other targets, and `go tool buildid`.
//!
//! Shared by sgcache-buildid's tests (as `common::go`) and by sgcache's
//! `tests/buildid_cli.rs`, which includes this file with `#[path]`: the two tests live in
//! different packages, and a support crate for four functions would cost a workspace member
//! and a dev-dependency in both. Std only, so it compiles in either.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Writes `parent/hello`, a module with a main package that prints "hello, world".
pub fn hello_module(parent: &Path) -> PathBuf {
    let module = parent.join("hello");
    std::fs::create_dir(&module).unwrap();
    std::fs::write(
        module.join("go.mod"),
        "module example.com/hello\n\ngo 1.21\n",
    )
    .unwrap();
    std::fs::write(
        module.join("main.go"),
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello, world\") }\n",
    )
    .unwrap();
    module
}

/// Runs `go ARGS` in `dir` for `goos`/`goarch` without cgo; requires success, returns
/// stdout.
pub fn go_for(args: &[&str], goos: &str, goarch: &str, dir: &Path) -> Vec<u8> {
    let out = Command::new("go")
        .args(args)
        .current_dir(dir)
        .env("CGO_ENABLED", "0")
        .env("GOOS", goos)
        .env("GOARCH", goarch)
        .env("GOFLAGS", "-buildvcs=false")
        .output()
        .expect("run go");
    assert!(
        out.status.success(),
        "go {args:?} ({goos}/{goarch}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Builds `module` for `goos`/`goarch` into `module/hello-GOOS-GOARCH[.exe]`.
pub fn build_hello(module: &Path, goos: &str, goarch: &str) -> PathBuf {
    let exe = module.join(format!(
        "hello-{goos}-{goarch}{}",
        if goos == "windows" { ".exe" } else { "" }
    ));
    go_for(
        &["build", "-o", exe.to_str().unwrap(), "."],
        goos,
        goarch,
        module,
    );
    exe
}

/// `go tool buildid ARGS`, as it ended.
pub fn go_tool_buildid(args: &[&str]) -> Output {
    Command::new("go")
        .args(["tool", "buildid"])
        .args(args)
        .output()
        .expect("run go tool buildid")
}

/// `go tool buildid ARGS`, required to succeed; its stdout.
pub fn go_tool_buildid_ok(args: &[&str]) -> Vec<u8> {
    let out = go_tool_buildid(args);
    assert!(
        out.status.success(),
        "go tool buildid {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
