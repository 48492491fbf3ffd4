//! The go command under test: a hermetic environment, the sgcache binary, and small modules
//! to build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The sgcache binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sgcache"))
}

/// Whether the go command is available; prints why a test skips when it is not.
pub fn have_go(test: &str) -> bool {
    let ok = Command::new("go")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP {test}: the go command is not on PATH (these tests run the real go)");
    }
    ok
}

/// A go command with a clean, hermetic environment.
pub fn go(dir: &Path, cache: &Path, prog: bool) -> Command {
    let mut c = Command::new("go");
    c.current_dir(dir)
        .env("GOCACHE", cache)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOENV", "off")
        .env("GOTELEMETRY", "off")
        .env_remove("SGCACHE_DIR")
        .env_remove("SGCACHE_MAX_SIZE")
        .env_remove("SGCACHE_REMOTE")
        .env_remove("GOCACHEPROG");
    if prog {
        c.env("GOCACHEPROG", bin());
    } else {
        c.env("GOCACHEPROG", "");
    }
    c
}

/// Runs and requires success, returning the output.
pub fn run_ok(mut c: Command) -> Output {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        c,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A go command through sgcache with the remote `url` in `namespace`, with the summary
/// line on (`SGCACHE_VERBOSE`) and a generous upload deadline.
pub fn go_remote(dir: &Path, cache: &Path, url: &str, namespace: &str) -> Command {
    let mut c = go(dir, cache, true);
    c.env("SGCACHE_REMOTE", url)
        .env("SGCACHE_NAMESPACE", namespace)
        .env("SGCACHE_VERBOSE", "json")
        .env("SGCACHE_UPLOAD_DEADLINE", "60s");
    c
}

/// `go build -x ./...`, required to succeed.
pub fn build_x(c: &mut Command) -> Output {
    c.args(["build", "-x", "./..."]);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Number of compiler invocations in `go build -x` output.
pub fn compiles(stderr: &[u8]) -> usize {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.contains("/compile ") || l.contains("/compile\" "))
        .count()
}

/// Writes a module with two library packages, a main package and a test.
pub fn write_module(root: &Path) {
    let files: &[(&str, &str)] = &[
        ("go.mod", "module example.com/m\n\ngo 1.21\n"),
        (
            "lib/a/a.go",
            "package a\n\nimport \"strings\"\n\n// Upper upper-cases.\nfunc Upper(s string) string { return strings.ToUpper(s) }\n",
        ),
        (
            "lib/a/a_test.go",
            "package a\n\nimport \"testing\"\n\nfunc TestUpper(t *testing.T) {\n\tif Upper(\"x\") != \"X\" {\n\t\tt.Fatal(\"bad\")\n\t}\n}\n",
        ),
        (
            "lib/b/b.go",
            "package b\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/m/lib/a\"\n)\n\n// Greet greets.\nfunc Greet(n string) string { return fmt.Sprintf(\"hello %s\", a.Upper(n)) }\n",
        ),
        (
            "cmd/hello/main.go",
            "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/m/lib/b\"\n)\n\nfunc main() { fmt.Println(b.Greet(\"gopher\")) }\n",
        ),
    ];
    for (name, body) in files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

/// Three packages that import nothing from std: a cold build is three compiles, so every
/// backend can run the full A → B round trip in seconds.
pub fn write_tiny_module(root: &Path, flavour: &str) {
    let files = [
        ("go.mod", "module example.com/tiny\n\ngo 1.21\n".to_owned()),
        ("a/a.go", format!("package a\n\n// V is a value.\nfunc V() int {{ return {} }}\n", flavour.len())),
        ("b/b.go", "package b\n\nimport \"example.com/tiny/a\"\n\n// W doubles.\nfunc W() int { return 2 * a.V() }\n".to_owned()),
        ("c/c.go", format!("package c\n\nimport \"example.com/tiny/b\"\n\n// X names.\nfunc X() (string, int) {{ return {flavour:?}, b.W() }}\n")),
    ];
    for (name, body) in files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

/// A package that imports "C" (seed 000's regression test).
pub fn write_cgo_module(root: &Path) {
    let files: &[(&str, &str)] = &[
        ("go.mod", "module example.com/cgo\n\ngo 1.21\n"),
        (
            "x.go",
            "package x\n\n// int twice(int v) { return 2*v; }\nimport \"C\"\n\n// Twice doubles.\nfunc Twice(v int) int { return int(C.twice(C.int(v))) }\n",
        ),
    ];
    for (name, body) in files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

/// Writes `src` to `root/rel`, creating directories.
pub fn write_file(root: &Path, rel: &str, src: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, src).unwrap();
}
