//! `sgcache prefetch`: warming a fresh local tier ahead of the go command, in the shared
//! daemon, with the real go command, nginx behind a latency proxy, and the real daemon.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::backends::var;
use crate::common::proxy::Proxy;
use crate::common::{bin, build_x, check_cache, compiles, go_remote, metrics, summary};

/// `sgcache` with the environment `go_remote` gives the go command's sgcache (so it talks to
/// the same daemon), plus `extra`.
fn sgcache(module: &Path, cache: &Path, url: &str, ns: &str, run: &Path) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(module)
        .env("GOCACHE", cache)
        .env("GOFLAGS", "-mod=mod")
        .env("GOENV", "off")
        .env_remove("SGCACHE_DIR")
        .env("SGCACHE_REMOTE", url)
        .env("SGCACHE_NAMESPACE", ns)
        .env("SGCACHE_UPLOAD_DEADLINE", "60s")
        .env("SGCACHE_MANIFEST_KEY", "prefetch-e2e")
        .env("XDG_RUNTIME_DIR", run);
    c
}

fn go_built(module: &Path, cache: &Path, url: &str, ns: &str, run: &Path) -> Output {
    let mut c = go_remote(module, cache, url, ns);
    c.env("SGCACHE_MANIFEST_KEY", "prefetch-e2e")
        .env("XDG_RUNTIME_DIR", run)
        .env("SGCACHE_DAEMON", "on");
    build_x(&mut c)
}

fn ok(mut c: Command, what: &str) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stops the daemon of a configuration when dropped.
struct StopDaemon(Command);

impl Drop for StopDaemon {
    fn drop(&mut self) {
        let _ = self.0.args(["daemon", "--stop"]).output();
    }
}

struct Setup {
    tmp: tempfile::TempDir,
    nginx: String,
    proxy: Proxy,
    slow: String,
    ns: String,
    module: std::path::PathBuf,
    run: std::path::PathBuf,
}

/// nginx behind a 20 ms proxy, and a module machine A has built through it twice: cold, then
/// warm, as CI's steady state has it (a warm build asks keys a cold one never does, and the
/// go command stores some of them; the manifest lists the rest as never stored).
fn setup(test: &str) -> Option<Setup> {
    if !crate::common::have_go(test) {
        return None;
    }
    let Some(nginx) = var("SGCACHE_TEST_HTTP_URL") else {
        eprintln!(
            "SKIP {test}: SGCACHE_TEST_HTTP_URL is not set (nginx; scripts/test.sh starts it)"
        );
        return None;
    };
    let (proxy, slow) = Proxy::for_http_url(&nginx);
    proxy.set_latency(Duration::from_millis(20));
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    crate::common::write_module(&module);
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let ns = format!("prefetch-{}-{test}", std::process::id());
    let mut a = go_remote(&module, &tmp.path().join("a"), &nginx, &ns);
    a.env("SGCACHE_MANIFEST_KEY", "prefetch-e2e")
        .env("SGCACHE_DAEMON", "off");
    build_x(&mut a);
    let mut again = go_remote(&module, &tmp.path().join("a"), &nginx, &ns);
    again
        .env("SGCACHE_MANIFEST_KEY", "prefetch-e2e")
        .env("SGCACHE_DAEMON", "off");
    build_x(&mut again);
    Some(Setup {
        tmp,
        nginx,
        proxy,
        slow,
        ns,
        module,
        run,
    })
}

#[test]
fn after_prefetch_a_fresh_directory_builds_without_a_remote_round_trip() {
    let Some(s) = setup("after_prefetch_a_fresh_directory_builds_without_a_remote_round_trip")
    else {
        return;
    };
    let b = s.tmp.path().join("b");
    let _stop = StopDaemon(sgcache(&s.module, &b, &s.slow, &s.ns, &s.run));
    let mut p = sgcache(&s.module, &b, &s.slow, &s.ns, &s.run);
    p.args(["prefetch", "--wait"]);
    let said = ok(p, "sgcache prefetch --wait");
    assert!(said.contains("warm"), "{said}");
    let before = s.proxy.requests_of("GET");
    let out = go_built(&s.module, &b, &s.slow, &s.ns, &s.run);
    assert_eq!(compiles(&out.stderr), 0, "{}", summary(&out));
    // The gets the local tier cannot answer are the keys the context never stores: the
    // daemon answers them from the manifest's list, without a request.
    let m = metrics(&out);
    assert_eq!(
        m.hits_remote, 0,
        "a get was answered from the remote: {m:?}"
    );
    // (The daemon may upload what the build put — the go command stores one key anew on
    // every warm build — but the build reads nothing.)
    assert_eq!(
        s.proxy.requests_of("GET") - before,
        0,
        "the build read from the remote: {}",
        s.proxy.describe()
    );
}

#[test]
fn a_build_started_during_prefetch_downloads_nothing_twice() {
    let Some(s) = setup("a_build_started_during_prefetch_downloads_nothing_twice") else {
        return;
    };
    let c = s.tmp.path().join("c");
    let _stop = StopDaemon(sgcache(&s.module, &c, &s.slow, &s.ns, &s.run));
    let before = s.proxy.requests_per_path("GET", "/cas/");
    let mut p = sgcache(&s.module, &c, &s.slow, &s.ns, &s.run);
    p.arg("prefetch");
    let t = Instant::now();
    ok(p, "sgcache prefetch");
    assert!(t.elapsed() < Duration::from_secs(5), "returns at once");
    let out = go_built(&s.module, &c, &s.slow, &s.ns, &s.run);
    assert_eq!(compiles(&out.stderr), 0, "{}", summary(&out));
    let after = s.proxy.requests_per_path("GET", "/cas/");
    let twice: Vec<_> = after
        .iter()
        .filter(|(k, n)| **n > before.get(*k).copied().unwrap_or(0) + 1)
        .collect();
    assert!(twice.is_empty(), "downloaded twice: {twice:?}");
    assert!(after.values().sum::<u64>() > before.values().sum::<u64>());
}

#[test]
fn prefetch_without_a_manifest_with_a_corrupt_pack_or_a_dead_remote_is_harmless() {
    let Some(s) = setup("prefetch_without_a_manifest…") else {
        return;
    };
    let stop =
        |cache: &Path, url: &str, ns: &str| StopDaemon(sgcache(&s.module, cache, url, ns, &s.run));
    // No manifest for this context.
    let d = s.tmp.path().join("d");
    let _s1 = stop(&d, &s.nginx, "nothing-here");
    let mut p = sgcache(&s.module, &d, &s.nginx, "nothing-here", &s.run);
    p.args(["prefetch", "--wait"]);
    let said = ok(p, "prefetch, no manifest");
    assert!(said.contains("0 records"), "{said}");
    // A dead remote: quick, quiet, nothing written but the outage record.
    let dead = format!(
        "http://127.0.0.1:{}/cache",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let e = s.tmp.path().join("e");
    let _s2 = stop(&e, &dead, &s.ns);
    let mut p = sgcache(&s.module, &e, &dead, &s.ns, &s.run);
    p.args(["prefetch", "--wait"]);
    let t = Instant::now();
    ok(p, "prefetch, dead remote");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let out = go_built(&s.module, &e, &dead, &s.ns, &s.run);
    assert!(
        compiles(&out.stderr) >= 3,
        "the build proceeds as without a remote"
    );
    // A corrupt pack, in a remote of this test's own: the last object of every pack gets a
    // byte flipped (the objects alone stay good).
    let remote = s.tmp.path().join("remote");
    let file_url = format!("file://{}", remote.display());
    let mut a = go_remote(&s.module, &s.tmp.path().join("a2"), &file_url, &s.ns);
    a.env("SGCACHE_MANIFEST_KEY", "prefetch-e2e")
        .env("SGCACHE_DAEMON", "off")
        .env("SGCACHE_COMPRESSION", "off");
    build_x(&mut a);
    let mut flipped = 0;
    for f in std::fs::read_dir(remote.join("cas")).unwrap().flatten() {
        let mut b = std::fs::read(f.path()).unwrap();
        // Framed, uncompressed: `SGC\0` then the pack.
        if b.starts_with(b"SGC\0sgp1") {
            let at = b.len() - 1;
            b[at] ^= 0x5a;
            std::fs::write(f.path(), b).unwrap();
            flipped += 1;
        }
    }
    assert!(flipped >= 1, "no pack found to corrupt");
    let g = s.tmp.path().join("g");
    let _s3 = stop(&g, &file_url, &s.ns);
    let mut p = sgcache(&s.module, &g, &file_url, &s.ns, &s.run);
    p.args(["prefetch", "--wait"]);
    ok(p, "prefetch, corrupt pack");
    let check = check_cache(&g);
    assert!(check.corrupt.is_empty(), "{:?}", check.corrupt);
    assert_eq!(check.temps, 0, "a partial file was left");
    let out = go_built(&s.module, &g, &file_url, &s.ns, &s.run);
    assert_eq!(
        compiles(&out.stderr),
        0,
        "the rest came from the objects: {}",
        summary(&out)
    );
    let check = check_cache(&g);
    assert!(check.corrupt.is_empty(), "{:?}", check.corrupt);
}

/// With no `SGCACHE_MANIFEST_KEY`, `sgcache prefetch` run from a shell that sets none of
/// GOOS, GOARCH, CGO_ENABLED, GOEXPERIMENT names the build context as the go command's child
/// does (the go command sets those for it): it finds the manifest the builds stored, and a
/// local-only build after it compiles nothing.
#[test]
fn prefetch_names_the_build_context_as_the_go_command_does() {
    let test = "prefetch_names_the_build_context_as_the_go_command_does";
    if !crate::common::have_go(test) {
        return;
    }
    let Some(nginx) = var("SGCACHE_TEST_HTTP_URL") else {
        eprintln!(
            "SKIP {test}: SGCACHE_TEST_HTTP_URL is not set (nginx; scripts/test.sh starts it)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    crate::common::write_module(&module);
    let ns = format!("prefetch-ctx-{}", std::process::id());
    for _ in 0..2 {
        let mut a = go_remote(&module, &tmp.path().join("a"), &nginx, &ns);
        a.env_remove("SGCACHE_MANIFEST_KEY")
            .env("SGCACHE_DAEMON", "off");
        build_x(&mut a);
    }
    let b = tmp.path().join("b");
    let mut p = sgcache(&module, &b, &nginx, &ns, &tmp.path().join("run"));
    p.env_remove("SGCACHE_MANIFEST_KEY")
        .env("SGCACHE_DAEMON", "off")
        .args(["prefetch", "--wait"]);
    for v in ["GOOS", "GOARCH", "CGO_ENABLED", "GOEXPERIMENT"] {
        p.env_remove(v);
    }
    let said = ok(p, "sgcache prefetch --wait");
    let records: u64 = said
        .split(" records")
        .next()
        .and_then(|r| r.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no record count in {said:?}"));
    assert!(
        records > 0,
        "prefetch found no manifest for this context: {said}"
    );
    let mut local = crate::common::go(&module, &b, true);
    let out = build_x(&mut local);
    assert_eq!(
        compiles(&out.stderr),
        0,
        "prefetch left something out: {said}"
    );
}
