//! What an input line is, what a change to it means, and what to do about it.
//!
//! Every line an action's hash is made of has a *key* (`file leaf.go`, `dir`, `import fmt`,
//! `GOAMD64`, `open /src/testdata/x`): two runs' lines are compared key by key, so the output
//! says "`file leaf.go`: A → B" rather than a line-by-line diff. A change is either the
//! action's *own* (its sources, flags, environment, toolchain, path) or a *dependency's*
//! (`import P <content id>`, `packagefile P=…`, a vet's `pkg`, a test's `test binary`): those
//! are followed down the graph to the actions whose own inputs changed.

use serde::Serialize;

use crate::quote::take_quoted;

/// The kinds of root cause, each with its remedy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// The Go toolchain differs (compiler version, GOROOT).
    Toolchain,
    /// Environment or flag skew (GOFLAGS, CGO_ENABLED, GOAMD64, CC, GOEXPERIMENT, tags,
    /// -ldflags, VCS stamping, test flags).
    Env,
    /// The checkout path enters the id (no `-trimpath`).
    Dir,
    /// A module version, the go.mod `go` line or its GODEBUG defaults changed.
    Module,
    /// A test read a file or variable that differs (mtime, size, value).
    TestInput,
    /// A source file changed, appeared or went away.
    Source,
    /// Same inputs, different output: the action is not reproducible.
    Output,
    /// The baseline has no such action.
    New,
    /// The inputs differ in a way the transcript does not show.
    Unknown,
}

impl Class {
    /// The short name (`dir`, `env`, …), as in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Toolchain => "toolchain",
            Class::Env => "env",
            Class::Dir => "dir",
            Class::Module => "module",
            Class::TestInput => "test-input",
            Class::Source => "source",
            Class::Output => "output",
            Class::New => "new",
            Class::Unknown => "unknown",
        }
    }

    /// One line: what this class of root cause is.
    pub fn title(self) -> &'static str {
        match self {
            Class::Toolchain => "toolchain skew: another Go toolchain",
            Class::Env => "environment or flag skew",
            Class::Dir => "checkout path: the build is not -trimpath, so the directory is an input",
            Class::Module => "module or version change",
            Class::TestInput => "test inputs: files or variables the tests read differ",
            Class::Source => "source change",
            Class::Output => "same inputs, different output",
            Class::New => "not in the baseline",
            Class::Unknown => "inputs differ, the transcript does not say how",
        }
    }
}

/// What a changed line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The action's own input: a root cause of this class, with a few words on what.
    Own(Class, String),
    /// A dependency's output changed: follow it.
    Dep(DepRef),
    /// Nothing to explain (a dependency that went away: its importer's change says why).
    None,
}

/// Which dependency a changed line points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepRef {
    /// The compile of this import path.
    Build(String),
    /// A vet's own compile (its `pkg` line).
    VetPkg,
    /// The vet of this import path.
    Vet(String),
    /// A test result's test binary (its link).
    TestBinary,
    /// A link's main package compile (`packagemain`).
    Main,
}

/// The key a line is compared under (see the module docs).
pub fn key(line: &str) -> String {
    let (first, rest) = line.split_once(' ').unwrap_or((line, ""));
    let second = rest.split(' ').next().unwrap_or("");
    match first {
        "file" | "vetout" => format!("{first} {second}"),
        "import" if second.starts_with('"') => "import (self)".to_owned(),
        "import" => format!("import {second}"),
        "packagefile" | "packageshlib" => {
            format!("{first} {}", rest.split('=').next().unwrap_or(""))
        }
        "env" | "open" | "stat" | "chdir" => match rest.rsplit_once(' ') {
            Some((name, _)) => format!("{first} {name}"),
            None => line.to_owned(),
        },
        "magic" => format!("magic {}", rest.split('=').next().unwrap_or("")),
        "test" if rest.starts_with("binary ") => "test binary".to_owned(),
        "CC" | "CXX" | "FC" if rest.starts_with("ID") => {
            format!("{first} {}", second.split('=').next().unwrap_or(""))
        }
        _ => match first.split_once('=') {
            Some((k, _)) => k.to_owned(),
            None => first.to_owned(),
        },
    }
}

/// Splits `compile <tool id …> <forced flags> <flags>` (also `asm`, `link`) into the tool
/// id and the flags: the flags are the trailing `[…]`-quoted lists Go prints with `%q`.
fn tool_and_flags(line: &str) -> (&str, &str) {
    match line.find(" [") {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, ""),
    }
}

/// What a change from `before` to `after` (either may be absent) of the line keyed `key`
/// means. `details` are the nested lines of a test input (a file's stat), when known.
pub fn effect(
    key: &str,
    before: Option<&str>,
    after: Option<&str>,
    details: Option<(&[String], &[String])>,
) -> Effect {
    let changed = before.is_some() && after.is_some();
    let (first, name) = key.split_once(' ').unwrap_or((key, ""));
    let own = |c: Class, what: String| Effect::Own(c, what);
    match first {
        "dir" => own(Class::Dir, "the package directory".into()),
        "file" if changed => own(Class::Source, format!("{name} changed")),
        "file" if after.is_some() => own(
            Class::Source,
            format!(
                "{name} is now part of the package (a new file, or build tags, GOOS/GOARCH or CGO_ENABLED select it)"
            ),
        ),
        "file" => own(
            Class::Source,
            format!(
                "{name} is no longer part of the package (deleted, or build tags, GOOS/GOARCH or CGO_ENABLED leave it out)"
            ),
        ),
        "import" if name == "(self)" => own(Class::Unknown, "the import path".into()),
        "import" | "packagefile" if changed => Effect::Dep(DepRef::Build(name.to_owned())),
        "import" | "packagefile" if after.is_some() => Effect::Dep(DepRef::Build(name.to_owned())),
        "import" | "packagefile" => Effect::None,
        "packagemain" => Effect::Dep(DepRef::Main),
        "pkg" => Effect::Dep(DepRef::VetPkg),
        "vetout" => match take_quoted(name.as_bytes()) {
            Some((p, _)) if after.is_some() => {
                Effect::Dep(DepRef::Vet(String::from_utf8_lossy(&p).into_owned()))
            }
            _ => Effect::None,
        },
        "test" => {
            let split = |l: &str| {
                l.split_once(" args ")
                    .map(|(b, a)| (b.to_owned(), a.to_owned()))
                    .unwrap_or((l.to_owned(), String::new()))
            };
            match (before.map(split), after.map(split)) {
                (Some((_, ba)), Some((_, aa))) if ba != aa => own(
                    Class::Env,
                    format!("go test flags or -exec (args {ba} → {aa})"),
                ),
                _ => Effect::Dep(DepRef::TestBinary),
            }
        }
        "cgo" if changed => own(Class::Toolchain, "the cgo tool".into()),
        "cgo" => own(
            Class::Env,
            format!(
                "cgo is {} for this package (CGO_ENABLED)",
                if after.is_some() { "on" } else { "off" }
            ),
        ),
        "CC" | "CXX" | "FC" if name == "ID" || name.starts_with("ID") => {
            own(Class::Env, format!("the C compiler version ({first})"))
        }
        "CC" | "CXX" | "FC" if changed => own(
            Class::Env,
            format!(
                "the C compiler command or cgo flags ({first}, CGO_CFLAGS, CGO_CPPFLAGS, CGO_LDFLAGS)"
            ),
        ),
        "CC" | "CXX" | "FC" => own(Class::Env, "cgo on or off (CGO_ENABLED)".into()),
        "compile" | "asm" | "link" if changed => {
            let (bt, bf) = tool_and_flags(before.unwrap_or_default());
            let (at, af) = tool_and_flags(after.unwrap_or_default());
            let flag = match first {
                "compile" => "-gcflags",
                "asm" => "-asmflags",
                _ => "-ldflags or -buildmode",
            };
            if bt != at {
                own(Class::Toolchain, format!("the {first} tool ({bt} → {at})"))
            } else if bf != af {
                own(
                    Class::Env,
                    format!("{flag} ({} → {})", bf.trim(), af.trim()),
                )
            } else {
                own(Class::Unknown, first.to_owned())
            }
        }
        "compile" | "link" => own(Class::Unknown, first.to_owned()),
        "asm" => own(Class::Source, "assembly files appeared or went away".into()),
        "vet" => own(Class::Toolchain, "the vet tool".into()),
        "vetflags" => own(Class::Env, "vet flags".into()),
        "goos" => own(Class::Env, "GOOS/GOARCH".into()),
        "buildmode" => own(Class::Env, "-buildmode, GOOS or GOARCH".into()),
        "GOROOT" => own(
            Class::Toolchain,
            "GOROOT's location (the linker records it without -trimpath)".into(),
        ),
        "GOEXPERIMENT" => own(Class::Env, "GOEXPERIMENT".into()),
        "GO_EXTLINK_ENABLED" => own(Class::Env, "GO_EXTLINK_ENABLED".into()),
        k if k.starts_with("GO")
            && k.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
        {
            own(Class::Env, k.to_owned())
        }
        "magic" => own(Class::Env, name.to_owned()),
        "go" => own(Class::Module, "the go line of go.mod".into()),
        "module" => own(Class::Module, "the module's version".into()),
        "defaultgodebug" => own(
            Class::Module,
            "the default GODEBUG (go.mod's go and godebug lines)".into(),
        ),
        "modinfo" => modinfo(before, after),
        "omitdebug" => own(
            Class::Env,
            "debug information settings (go run, -ldflags=-w)".into(),
        ),
        "trimpath" => own(Class::Env, "-trimpath".into()),
        "forcelibrary" => own(Class::Env, "a test copy of the package".into()),
        "cover" => own(Class::Env, "-cover / -covermode".into()),
        "fuzz" => own(Class::Env, "-fuzz instrumentation".into()),
        "linkflags" => own(Class::Env, "-ldflags".into()),
        "packageshlib" => own(Class::Env, "-linkshared".into()),
        "pgofile" | "preprofile" => own(Class::Source, "the PGO profile".into()),
        "env" if name == "GODEBUG" => own(Class::Env, "GODEBUG".into()),
        "env" => own(
            Class::TestInput,
            match details {
                Some((b, a)) if b != a => format!(
                    "the environment variable {name} (was {}, is {})",
                    b.first().map_or("?", |s| s.as_str()),
                    a.first().map_or("?", |s| s.as_str())
                ),
                _ => format!("the value of the environment variable {name}"),
            },
        ),
        "open" | "stat" | "chdir" => {
            own(Class::TestInput, file_change(name, before, after, details))
        }
        _ => own(Class::Unknown, key.to_owned()),
    }
}

/// What differs in a file a test opened: its stat line is `stat <size> <mode> <mtime> <isdir>`.
fn file_change(
    name: &str,
    before: Option<&str>,
    after: Option<&str>,
    details: Option<(&[String], &[String])>,
) -> String {
    match (before, after) {
        (None, _) => return format!("{name} (newly read by the test)"),
        (_, None) => return format!("{name} (no longer read by the test)"),
        _ => {}
    }
    let Some((b, a)) = details else {
        return format!("{name} (size or modification time)");
    };
    let parse = |l: &str| -> Option<(String, String, String)> {
        let r = l.strip_prefix("stat ")?;
        let (size, r) = r.split_once(' ')?;
        let (mode, r) = r.split_once(' ')?;
        let (time, _) = r.rsplit_once(' ')?;
        Some((size.to_owned(), mode.to_owned(), time.to_owned()))
    };
    let (bs, as_) = (
        b.iter().find_map(|l| parse(l)),
        a.iter().find_map(|l| parse(l)),
    );
    match (bs, as_) {
        (Some(b), Some(a)) if b.0 != a.0 => format!("{name}: size {} → {}", b.0, a.0),
        (Some(b), Some(a)) if b.2 != a.2 => format!("{name}: modification time {} → {}", b.2, a.2),
        (Some(b), Some(a)) if b.1 != a.1 => format!("{name}: mode {} → {}", b.1, a.1),
        _ if b.len() != a.len() => format!("{name}: the directory's entries"),
        _ => format!("{name} (existence, or a directory entry's size or time)"),
    }
}

/// A binary's build info (`modinfo "<path, mod, dep and build lines>"`): which part differs.
fn modinfo(before: Option<&str>, after: Option<&str>) -> Effect {
    let lines = |l: Option<&str>| -> Vec<String> {
        let q = l.and_then(|l| l.strip_prefix("modinfo ")).unwrap_or("");
        match take_quoted(q.as_bytes()) {
            Some((v, _)) => String::from_utf8_lossy(&v)
                .lines()
                .map(str::to_owned)
                .collect(),
            None => Vec::new(),
        }
    };
    let (b, a) = (lines(before), lines(after));
    let differ: Vec<&String> = a
        .iter()
        .filter(|l| !b.contains(l))
        .chain(b.iter().filter(|l| !a.contains(l)))
        .collect();
    if differ.iter().any(|l| l.starts_with("build\tvcs")) {
        return Effect::Own(
            Class::Env,
            "VCS stamping: the commit (vcs.revision, vcs.time, vcs.modified) is stamped into the binary".into(),
        );
    }
    if differ
        .iter()
        .any(|l| l.starts_with("dep\t") || l.starts_with("mod\t") || l.starts_with("=>\t"))
    {
        return Effect::Own(
            Class::Module,
            "dependency versions in the build info".into(),
        );
    }
    if let Some(l) = differ.iter().find(|l| l.starts_with("build\t")) {
        let setting = l["build\t".len()..].split('=').next().unwrap_or("");
        return Effect::Own(Class::Env, format!("the build setting {setting}"));
    }
    Effect::Own(Class::Module, "the build info (modinfo)".into())
}

/// What to do about a root cause of class `c` whose first own change is `what`.
pub fn remedy(c: Class, what: &str) -> String {
    match c {
        Class::Toolchain => "use the same Go toolchain as the baseline everywhere (pin it: a toolchain line in go.mod, or the same go-version in CI)".into(),
        Class::Dir => "build with -trimpath (e.g. GOFLAGS=-trimpath in every job, the recording one included): the checkout path then stops being an input; or check out at the same path everywhere".into(),
        Class::Env if what.starts_with("VCS stamping") => "build with -buildvcs=false (or GOFLAGS=-buildvcs=false): the revision changes with every commit and invalidates every binary".into(),
        Class::Env if what.contains("CGO_ENABLED") || what.contains("C compiler") => "set CGO_ENABLED (and CC, CGO_CFLAGS…) the same way in every job; with cgo on, use the same C compiler".into(),
        Class::Env if what.contains("go test flags") => "run go test with the same flags as the baseline (-run, -short, -timeout…; other flags, such as -count=1, are never cached)".into(),
        Class::Env if what == "GODEBUG" => "set GODEBUG the same way in every job: every test's cached result depends on it".into(),
        Class::Env => format!("use the same settings as the baseline: {what} differs (GOFLAGS, build flags and GO* variables must match across jobs)"),
        Class::Module => "dependency or go.mod changes: expected after an update, nothing to fix".into(),
        Class::TestInput if what.contains("modification time") => "give checked-out files a canonical modification time before go test (`sgcache ci restore-mtimes`: the same mtime for the same content on every checkout): the test cache keys files a test opens by size and mtime, and a fresh checkout has new mtimes".into(),
        Class::TestInput if what.contains("environment variable") => "set the variable the same way in every job: a test that reads it is cached per value".into(),
        Class::TestInput => "a file or variable a test reads changed: expected if it really did; otherwise make it the same in every job".into(),
        Class::Source => "a real change in the sources: expected, nothing to fix".into(),
        Class::Output => "the same inputs produced different output: the action is not reproducible here (or the baseline's result came from another build)".into(),
        Class::New => "the baseline has no such action: it was recorded for another command, package set or configuration".into(),
        Class::Unknown => "compare the full input lists with --json".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for (line, k) in [
            ("file leaf.go szUVfFE4d4ebpQ9R4u9K", "file leaf.go"),
            ("dir /tmp/ex/m/leaf", "dir"),
            ("import \"example.com/m/leaf\"", "import (self)"),
            ("import os zPOy37qVyIIUS_BSsIpj", "import os"),
            ("packagefile fmt=abc", "packagefile fmt"),
            ("GOAMD64=v1", "GOAMD64"),
            ("CC ID=\"gcc 12\"", "CC ID"),
            ("CC=[\"gcc\"] [] [] []", "CC"),
            ("env FOO 00ff", "env FOO"),
            ("open /a b/c 00ff", "open /a b/c"),
            ("test binary X args [] execcmd \"\"", "test binary"),
            ("vetout \"fmt\" abc", "vetout \"fmt\""),
            ("compile compile version go1.26.8 [] []", "compile"),
            ("compile", "compile"),
            ("magic GOSSAFUNC=f", "magic GOSSAFUNC"),
        ] {
            assert_eq!(key(line), k, "{line}");
        }
    }

    #[test]
    fn effects() {
        let e = |k: &str, b: Option<&str>, a: Option<&str>| effect(k, b, a, None);
        assert_eq!(
            e("dir", Some("dir /a"), Some("dir /b")),
            Effect::Own(Class::Dir, "the package directory".into())
        );
        assert!(matches!(
            e("file a.go", Some("file a.go x"), Some("file a.go y")),
            Effect::Own(Class::Source, _)
        ));
        assert_eq!(
            e("import fmt", Some("import fmt a"), Some("import fmt b")),
            Effect::Dep(DepRef::Build("fmt".into()))
        );
        assert!(
            matches!(e("cgo", None, Some("cgo \"x\"")), Effect::Own(Class::Env, w) if w.contains("CGO_ENABLED"))
        );
        assert!(matches!(
            e(
                "compile",
                Some("compile compile version go1.26.8 [] []"),
                Some("compile compile version go1.27.0 [] []")
            ),
            Effect::Own(Class::Toolchain, _)
        ));
        assert!(matches!(
            e("compile", Some("compile compile version go1.26.8 [] []"), Some("compile compile version go1.26.8 [] [\"-N\" \"-l\"]")),
            Effect::Own(Class::Env, w) if w.starts_with("-gcflags")
        ));
        assert!(
            matches!(e("GOAMD64", Some("GOAMD64=v1"), Some("GOAMD64=v3")), Effect::Own(Class::Env, w) if w == "GOAMD64")
        );
        assert_eq!(
            e(
                "test binary",
                Some("test binary A args [] execcmd \"\""),
                Some("test binary B args [] execcmd \"\"")
            ),
            Effect::Dep(DepRef::TestBinary)
        );
        assert!(matches!(
            e(
                "test binary",
                Some("test binary A args [] execcmd \"\""),
                Some("test binary A args [\"-test.short=true\"] execcmd \"\"")
            ),
            Effect::Own(Class::Env, _)
        ));
        let vcs_b = "modinfo \"path x\\nbuild\\tvcs.revision=aaa\\n\"";
        let vcs_a = "modinfo \"path x\\nbuild\\tvcs.revision=bbb\\n\"";
        assert!(
            matches!(e("modinfo", Some(vcs_b), Some(vcs_a)), Effect::Own(Class::Env, w) if w.starts_with("VCS"))
        );
        let dep_b = "modinfo \"path x\\ndep\\ty\\tv1.0.0\\n\"";
        let dep_a = "modinfo \"path x\\ndep\\ty\\tv1.1.0\\n\"";
        assert!(matches!(
            e("modinfo", Some(dep_b), Some(dep_a)),
            Effect::Own(Class::Module, _)
        ));
    }

    #[test]
    fn test_file_changes_name_the_mtime() {
        let b = vec!["stat 3 1a4 2026-01-01 00:00:00 +0000 UTC false".to_owned()];
        let a = vec!["stat 3 1a4 2026-03-01 12:00:00 +0000 UTC false".to_owned()];
        let eff = effect(
            "open /m/testdata/x",
            Some("open /m/testdata/x aa"),
            Some("open /m/testdata/x bb"),
            Some((&b, &a)),
        );
        let Effect::Own(Class::TestInput, what) = eff else {
            panic!("{eff:?}")
        };
        assert_eq!(
            what,
            "/m/testdata/x: modification time 2026-01-01 00:00:00 +0000 UTC → 2026-03-01 12:00:00 +0000 UTC"
        );
        assert!(remedy(Class::TestInput, &what).contains("restore-mtimes"));
        let a = vec!["stat 4 1a4 2026-03-01 12:00:00 +0000 UTC false".to_owned()];
        let Effect::Own(_, what) = effect(
            "open /x",
            Some("open /x aa"),
            Some("open /x bb"),
            Some((&b, &a)),
        ) else {
            panic!()
        };
        assert_eq!(what, "/x: size 3 → 4");
    }
}
