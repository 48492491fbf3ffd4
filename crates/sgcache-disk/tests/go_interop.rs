//! Interop with the real go command: sgcache reads what `go build` wrote, the go command reads
//! what sgcache wrote, and `go clean -cache` removes exactly what it should.
#![allow(clippy::print_stderr)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sgcache_disk::{ActionId, DiskCache, ManualClock, OutputId, ScanKind, sha256};

fn go_available() -> bool {
    Command::new("go")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn write_module(root: &Path) {
    let files = [
        ("go.mod", "module example.com/interop\n\ngo 1.21\n"),
        (
            "greet/greet.go",
            "package greet\n\nimport \"strings\"\n\nfunc Hello(n string) string { return \"hello, \" + strings.ToUpper(n) }\n",
        ),
        (
            "sum/sum.go",
            "package sum\n\nfunc Add(xs ...int) (t int) {\n\tfor _, x := range xs {\n\t\tt += x\n\t}\n\treturn t\n}\n",
        ),
        (
            "main.go",
            "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/interop/greet\"\n\t\"example.com/interop/sum\"\n)\n\nfunc main() { fmt.Println(greet.Hello(\"go\"), sum.Add(1, 2, 3)) }\n",
        ),
    ];
    for (name, text) in files {
        let p = root.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
}

struct Go {
    module: PathBuf,
    cache: PathBuf,
    home: PathBuf,
}

impl Go {
    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("go")
            .args(args)
            .current_dir(&self.module)
            .env("GOCACHE", &self.cache)
            .env("GOCACHEPROG", "")
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "")
            .env("GODEBUG", "")
            .env("GOPATH", self.home.join("gopath"))
            .env("GOENV", "off")
            .output()
            .expect("run go");
        assert!(
            out.status.success(),
            "go {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Commands `go build -x` ran (compile/link invocations), to prove cache hits.
fn tool_runs(out: &Output, tool: &str) -> usize {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(&format!("/{tool} ")) && !l.starts_with('#'))
        .count()
}

/// Every -a parses with get(); every -d an entry references hashes to its name.
fn check_cache(c: &DiskCache) -> (usize, usize) {
    let mut actions: Vec<ActionId> = Vec::new();
    let mut outputs = 0;
    c.scan(|item| match item.kind {
        ScanKind::Action => actions.push(item.id.unwrap().into()),
        ScanKind::Output | ScanKind::Executable => outputs += 1,
        ScanKind::Temp | ScanKind::Other => panic!("unexpected file {}", item.path.display()),
    })
    .unwrap();
    let mut referenced = 0;
    for id in &actions {
        let e = c
            .get(id)
            .unwrap()
            .unwrap_or_else(|| panic!("go-written entry {} does not parse", hex::encode(id)));
        if let Some((e2, path)) = c.get_file(id).unwrap() {
            assert_eq!(e2, e);
            assert_eq!(
                OutputId::from(sgcache_disk::file_hash(&path).unwrap()),
                e.output,
                "{}",
                path.display()
            );
            referenced += 1;
        }
    }
    assert!(referenced > 0);
    (actions.len(), outputs)
}

#[test]
fn go_command_and_sgcache_share_a_cache() {
    if !go_available() {
        eprintln!("skipping go_interop: `go` is not on PATH (install Go to run this test)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let go = Go {
        module: tmp.path().join("mod"),
        cache: tmp.path().join("gocache"),
        home: tmp.path().to_path_buf(),
    };
    write_module(&go.module);
    let bin = tmp.path().join("app");
    let bin_s = bin.to_str().unwrap();

    // 1. Plain go fills the cache; `go run` adds an executable entry (Go >= 1.24).
    go.run(&["build", "-o", bin_s, "."]);
    let run = go.run(&["run", "."]);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello, GO 6\n");

    // 2. sgcache reads everything go wrote.
    let later = Arc::new(ManualClock::at_unix(0));
    later.set(SystemTime::now() + Duration::from_secs(3600));
    let c = DiskCache::open(&go.cache).unwrap();
    let readme = fs::read(go.cache.join("README")).unwrap();
    assert_eq!(
        readme,
        sgcache_disk::README_TEXT.as_bytes(),
        "README text differs from this Go"
    );
    let (n_actions, n_outputs) = check_cache(&c);
    assert!(n_actions > 50 && n_outputs > 50, "{n_actions} {n_outputs}");
    let trim_txt = fs::read_to_string(go.cache.join("trim.txt")).unwrap();
    assert!(trim_txt.parse::<i64>().is_ok(), "{trim_txt:?}");
    let report = c.clone().with_clock(later.clone()).verify(false).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(report.outputs_checked as usize + report.executables_checked as usize == n_outputs);
    let mut executables = 0;
    c.scan(|i| executables += usize::from(i.kind == ScanKind::Executable))
        .unwrap();
    // `go run` caches its binary as `<out>-d/<name>` (Go >= 1.24); verify hashed it above.
    assert!(executables >= 1, "go run did not leave an executable entry");
    assert_eq!(report.executables_checked as usize, executables);

    // 3. Rewrite every output and index entry with sgcache: go must still hit on all of them.
    let mut rewritten = 0;
    let mut ids = Vec::new();
    c.scan(|i| {
        if i.kind == ScanKind::Action {
            ids.push(ActionId::from(i.id.unwrap()));
        }
    })
    .unwrap();
    for id in &ids {
        let e = c.get(id).unwrap().unwrap();
        let d = c.output_path(&e.output);
        if d.is_file() {
            let data = fs::read(&d).unwrap();
            fs::remove_file(&d).unwrap();
            let mut p = c.begin_put(&e.output, data.len() as u64).unwrap();
            std::io::Write::write_all(&mut p, &data).unwrap();
            assert_eq!(p.commit().unwrap(), d);
            rewritten += 1;
        }
        fs::remove_file(c.action_path(id)).unwrap();
        c.put_index_entry(&e).unwrap();
    }
    assert!(rewritten > 50);
    fs::remove_file(&bin).unwrap();
    let out = go.run(&["build", "-x", "-o", bin_s, "."]);
    assert_eq!(
        tool_runs(&out, "compile"),
        0,
        "go recompiled after sgcache rewrote the cache:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bin.exists());
    // `go run` still finds its cached executable through an sgcache-written index entry.
    let out = go.run(&["run", "-x", "."]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, GO 6\n");
    assert_eq!(
        tool_runs(&out, "link"),
        0,
        "go run relinked:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 4. Entries put by sgcache alongside go's do not disturb go.
    for i in 0..100u32 {
        let data = format!("sgcache output {i}");
        let id = ActionId::from(sha256(format!("sgcache action {i}").as_bytes()));
        c.put_bytes(&id, data.as_bytes()).unwrap();
    }
    sgcache_disk::add_counters(
        &go.cache,
        &sgcache_disk::MetricsSnapshot {
            puts: 100,
            ..Default::default()
        },
    )
    .unwrap();
    let out = go.run(&["build", "-x", "-o", bin_s, "."]);
    assert_eq!(tool_runs(&out, "compile"), 0);
    let report = c.clone().with_clock(later).verify(false).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);

    // 5. go clean -cache removes the subdirectories and keeps README, trim.txt and our state.
    go.run(&["clean", "-cache"]);
    for i in 0..=255u8 {
        assert!(!go.cache.join(format!("{i:02x}")).exists());
    }
    assert!(go.cache.join("README").exists());
    assert!(go.cache.join("trim.txt").exists());
    assert_eq!(sgcache_disk::read_counters(&go.cache).unwrap().puts, 100);
    // And both sides recover: sgcache recreates subdirs on demand, go rebuilds.
    c.put_bytes(&sha256(b"after clean").into(), b"x").unwrap();
    let out = go.run(&["build", "-x", "-o", bin_s, "."]);
    assert!(
        tool_runs(&out, "compile") > 0,
        "go should have rebuilt after clean"
    );
    let c = DiskCache::open(&go.cache).unwrap();
    check_cache(&c);
}
