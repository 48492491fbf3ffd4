//! The remote tier end to end with the real go command: "machine A" builds through
//! sgcache with a remote, "machine B" (a fresh local directory, same remote) builds with
//! zero compiles. Against `file://` always, and against every real server the harness
//! started (`.ci/servers.sh` exports `SGCACHE_TEST_*_URL`).
#![allow(clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, Output};

use crate::common::backends::{Backend, backends, go_remote, var};
use crate::common::{
    build_x as build, compiles, have_go, run_ok, summary, write_module, write_tiny_module,
};

/// Every backend: A builds and uploads, B starts fresh and compiles nothing.
#[test]
fn machine_b_builds_with_zero_compiles_on_every_backend() {
    if !have_go("machine_b_builds_with_zero_compiles_on_every_backend") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for b in backends(&tmp.path().join("remote")) {
        // A unique flavour per run keeps runs independent on shared servers.
        let flavour = format!("{}-{}-{}", b.name, std::process::id(), tmp.path().display());
        let module = tmp.path().join(format!("mod-{}", b.name));
        write_tiny_module(&module, &flavour);
        let a = build(&mut go_remote(
            &module,
            &tmp.path().join(format!("a-{}", b.name)),
            &b,
            "main",
            &[],
        ));
        assert!(compiles(&a.stderr) >= 3, "{}: A compiles", b.name);
        let bout = build(&mut go_remote(
            &module,
            &tmp.path().join(format!("b-{}", b.name)),
            &b,
            "main",
            &[],
        ));
        assert_eq!(
            compiles(&bout.stderr),
            0,
            "{}: machine B compiled; summaries:\nA {}\nB {}",
            b.name,
            summary(&a),
            summary(&bout)
        );
        eprintln!("{}: ok; B {}", b.name, summary(&bout));
    }
}

/// The full module (std deps, a main, a test) through file:// and, when running, S3:
/// B builds with zero compiles and its tests report (cached).
#[test]
fn machine_b_full_module_and_cached_tests() {
    if !have_go("machine_b_full_module_and_cached_tests") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    write_module(&module);
    for b in backends(&tmp.path().join("remote"))
        .into_iter()
        .filter(|b| b.name == "file" || b.name == "s3")
    {
        let ns = format!("full-{}", std::process::id());
        let a_dir = tmp.path().join(format!("a-{}", b.name));
        build(&mut go_remote(&module, &a_dir, &b, &ns, &[]));
        let mut t = go_remote(&module, &a_dir, &b, &ns, &[]);
        t.args(["test", "./..."]);
        run_ok(t);

        let b_dir = tmp.path().join(format!("b-{}", b.name));
        let out = build(&mut go_remote(&module, &b_dir, &b, &ns, &[]));
        assert_eq!(compiles(&out.stderr), 0, "{}: {}", b.name, summary(&out));
        let mut t = go_remote(&module, &b_dir, &b, &ns, &[]);
        t.args(["test", "./..."]);
        let text = String::from_utf8_lossy(&run_ok(t).stdout).into_owned();
        assert!(
            text.contains("(cached)"),
            "{}: tests on B not cached: {text}",
            b.name
        );
    }
}

/// A remote whose objects were corrupted: the build succeeds, recompiles, and the bad
/// bytes never reach the local tier.
#[test]
fn corrupted_remote_objects_are_never_used() {
    if !have_go("corrupted_remote_objects_are_never_used") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("remote");
    let b = &backends(&root)[0];
    let module = tmp.path().join("m");
    write_tiny_module(&module, "corrupt");
    // No packs: they would hold intact copies of some objects (a flipped byte in compressed
    // data spoils only part of a pack). `corrupted_pack_objects_are_never_used` covers them.
    let no_packs = [("SGCACHE_PACKS", "0")];
    build(&mut go_remote(
        &module,
        &tmp.path().join("a"),
        b,
        "main",
        &no_packs,
    ));
    // Flip a byte in the middle of every object.
    let mut n = 0;
    for f in walk(&root) {
        if f.components().any(|c| c.as_os_str() == "cas") {
            let mut data = std::fs::read(&f).unwrap();
            if data.len() > 8 {
                let i = data.len() / 2;
                data[i] ^= 0x55;
                std::fs::write(&f, data).unwrap();
                n += 1;
            }
        }
    }
    assert!(
        n >= 3,
        "found {n} objects to corrupt under {}",
        root.display()
    );
    let cache_b = tmp.path().join("b");
    let out = build(&mut go_remote(&module, &cache_b, b, "main", &no_packs));
    assert!(
        compiles(&out.stderr) >= 3,
        "corrupted objects were used: {}",
        summary(&out)
    );
    assert!(
        crate::common::summary_counter(&out, "remote_corrupt_objects") >= 3,
        "corrupt objects not counted: {}",
        summary(&out)
    );
    let (problems, report) = crate::common::sgcache_verify(&cache_b);
    assert_eq!(problems, 0, "{report}");
}

/// Pack tests: a temp dir with a `file://` remote in it and a tiny module (`name`).
fn file_remote_setup(
    name: &str,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Backend,
    std::path::PathBuf,
) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("remote");
    let b = backends(&root).swap_remove(0);
    let module = tmp.path().join("m");
    write_tiny_module(&module, name);
    (tmp, root, b, module)
}

/// The pack tests' environment: one manifest key, and raw objects, so packs can be found
/// and a flipped byte is a wrong object rather than undecodable zstd.
const PACK_ENV: [(&str, &str); 2] = [
    ("SGCACHE_MANIFEST_KEY", "packs"),
    ("SGCACHE_COMPRESSION", "off"),
];

/// The packs stored (raw) under a `file://` remote's `root`.
fn packs_under(root: &Path) -> Vec<std::path::PathBuf> {
    walk(root)
        .into_iter()
        .filter(|f| std::fs::read(f).is_ok_and(|d| d.starts_with(b"SGC\0sgp1")))
        .collect()
}

/// A pack holding a corrupted object: that object is rejected (and counted), never reaches
/// the local tier, and is fetched on its own instead, while the rest of the pack is used.
#[test]
fn corrupted_pack_objects_are_never_used() {
    if !have_go("corrupted_pack_objects_are_never_used") {
        return;
    }
    let (tmp, root, b, module) = file_remote_setup("packcorrupt");
    let b = &b;
    build(&mut go_remote(
        &module,
        &tmp.path().join("a"),
        b,
        "main",
        &PACK_ENV,
    ));
    let u32_at = |d: &[u8], i: usize| u32::from_le_bytes(d[i..i + 4].try_into().unwrap()) as usize;
    let u64_at = |d: &[u8], i: usize| u64::from_le_bytes(d[i..i + 8].try_into().unwrap()) as usize;
    let mut flipped = 0;
    for f in packs_under(&root) {
        let mut d = std::fs::read(&f).unwrap();
        // Framed raw object `SGC\0`, then the pack: `sgp1`, count, (id, size) each, bodies.
        let n = u32_at(&d, 8);
        let mut at = 12 + 40 * n;
        for k in 0..n {
            let size = u64_at(&d, 12 + 40 * k + 32);
            if size >= 2 {
                d[at + size / 2] ^= 0x55;
                flipped += 1;
                break;
            }
            at += size;
        }
        std::fs::write(&f, d).unwrap();
    }
    assert!(flipped >= 1, "no pack found under {}", root.display());
    let cache_b = tmp.path().join("b");
    let out = build(&mut go_remote(&module, &cache_b, b, "main", &PACK_ENV));
    assert_eq!(compiles(&out.stderr), 0, "{}", summary(&out));
    assert!(
        crate::common::summary_counter(&out, "remote_corrupt_objects") >= flipped as u64,
        "corrupted pack objects not counted: {}",
        summary(&out)
    );
    assert!(
        crate::common::summary_counter(&out, "prefetch_pack_objects") >= 1,
        "the rest of the pack was not used: {}",
        summary(&out)
    );
    let (problems, report) = crate::common::sgcache_verify(&cache_b);
    assert_eq!(problems, 0, "{report}");
}

/// Packs the remote no longer has (say, expired by a lifecycle rule): the next machine
/// still gets every output, one by one, and stores its manifest again with the packs
/// rebuilt, which the machine after it uses.
#[test]
fn expired_packs_are_rebuilt() {
    if !have_go("expired_packs_are_rebuilt") {
        return;
    }
    let (tmp, root, b, module) = file_remote_setup("packexpiry");
    let b = &b;
    let n = |out: &Output, k: &str| crate::common::summary_counter(out, k);
    let a = build(&mut go_remote(
        &module,
        &tmp.path().join("a"),
        b,
        "main",
        &PACK_ENV,
    ));
    assert!(n(&a, "packs_stored") >= 1, "{}", summary(&a));
    let packs = packs_under(&root);
    assert!(!packs.is_empty(), "no pack under {}", root.display());
    for f in &packs {
        std::fs::remove_file(f).unwrap();
    }
    let out = build(&mut go_remote(
        &module,
        &tmp.path().join("b"),
        b,
        "main",
        &PACK_ENV,
    ));
    assert_eq!(compiles(&out.stderr), 0, "{}", summary(&out));
    assert_eq!(
        n(&out, "prefetch_packs_missing"),
        packs.len() as u64,
        "{}",
        summary(&out)
    );
    assert_eq!(n(&out, "prefetch_pack_objects"), 0, "{}", summary(&out));
    assert!(
        n(&out, "packs_stored") >= 1,
        "packs not rebuilt: {}",
        summary(&out)
    );
    let out = build(&mut go_remote(
        &module,
        &tmp.path().join("c"),
        b,
        "main",
        &PACK_ENV,
    ));
    assert_eq!(compiles(&out.stderr), 0, "{}", summary(&out));
    assert_eq!(n(&out, "prefetch_packs_missing"), 0, "{}", summary(&out));
    assert!(
        n(&out, "prefetch_pack_objects") >= 3,
        "rebuilt packs not used: {}",
        summary(&out)
    );
}

/// A remote that is down from the start (connection refused) costs a warning, not a build.
#[test]
fn remote_down_at_start_builds_locally() {
    if !have_go("remote_down_at_start_builds_locally") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    write_tiny_module(&module, "down");
    let dead = Backend {
        name: "dead",
        url: "http://127.0.0.1:9/cache".into(),
        env: vec![],
    };
    let t0 = std::time::Instant::now();
    let out = build(&mut go_remote(
        &module,
        &tmp.path().join("c"),
        &dead,
        "main",
        &[("SGCACHE_UPLOAD_DEADLINE", "2s")],
    ));
    assert!(compiles(&out.stderr) >= 3);
    let warnings = warning_lines(&out);
    assert!(
        warnings <= 2,
        "too chatty: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        t0.elapsed().as_secs() < 60,
        "a dead remote slowed the build to {:?}",
        t0.elapsed()
    );
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Wrong credentials against the real S3 server: the go command builds (compiling what it
/// must), sgcache says so in at most two warning lines, nothing reaches the remote, and the
/// local tier verifies clean. Then right credentials on a fresh machine: the wrong-key run
/// left nothing there to use.
#[test]
fn wrong_credentials_build_locally() {
    if !have_go("wrong_credentials_build_locally") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(s3) = backends(&tmp.path().join("remote"))
        .into_iter()
        .find(|b| b.name == "s3")
    else {
        eprintln!("SKIP wrong_credentials_build_locally: SGCACHE_TEST_S3_URL is not set");
        return;
    };
    let module = tmp.path().join("m");
    write_tiny_module(&module, "creds");
    let ns = format!("creds-{}", std::process::id());
    let mut wrong = Backend {
        name: "s3-wrong",
        url: s3.url.clone(),
        env: s3.env.clone(),
    };
    for (k, v) in &mut wrong.env {
        if *k == "AWS_SECRET_ACCESS_KEY" {
            *v = "definitely-wrong".into();
        }
    }
    let dir = tmp.path().join("w");
    let out = build(&mut go_remote(
        &module,
        &dir,
        &wrong,
        &ns,
        &[("SGCACHE_UPLOAD_DEADLINE", "5s")],
    ));
    assert!(compiles(&out.stderr) >= 3, "{}", summary(&out));
    let warnings = warning_lines(&out);
    assert!(
        (1..=2).contains(&warnings),
        "want one or two warning lines: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        crate::common::sgcache_verify(&dir).0,
        0,
        "local tier not clean"
    );
    let fresh = build(&mut go_remote(
        &module,
        &tmp.path().join("r"),
        &s3,
        &ns,
        &[],
    ));
    assert!(
        compiles(&fresh.stderr) >= 3,
        "entries reached the remote with a wrong key: {}",
        summary(&fresh)
    );
}

/// The remote is killed in the middle of a build: a real redis-server started for this test
/// gets SIGKILL while a cold build (std and the module, uploads in flight) is running. The
/// go command succeeds, sgcache says so in at most two warning lines, and the local tier
/// verifies clean.
#[test]
fn remote_killed_mid_build_still_builds() {
    if !have_go("remote_killed_mid_build_still_builds") {
        return;
    }
    let Ok(redis) = which("redis-server") else {
        eprintln!("SKIP remote_killed_mid_build_still_builds: redis-server is not installed");
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Command::new(redis)
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(tmp.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "redis-server did not start on port {port}");
    let module = tmp.path().join("m");
    write_module(&module);
    let live = Backend {
        name: "redis-killed",
        url: format!("redis://127.0.0.1:{port}/0"),
        env: vec![],
    };
    let dir = tmp.path().join("c");
    let mut c = go_remote(
        &module,
        &dir,
        &live,
        "main",
        &[("SGCACHE_UPLOAD_DEADLINE", "5s")],
    );
    c.args(["build", "-x", "./..."]);
    let child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A cold build of std's dependencies takes seconds: kill the server while it runs.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = server.kill();
    let _ = server.wait();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the build failed when the remote died: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(compiles(&out.stderr) >= 3);
    let warnings = warning_lines(&out);
    assert!(
        warnings <= 2,
        "too chatty: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        crate::common::summary_counter(&out, "uploads") > 0,
        "nothing reached the server before it was killed (the kill came too early to test \
         anything): {}",
        summary(&out)
    );
    assert_eq!(
        crate::common::sgcache_verify(&dir).0,
        0,
        "local tier not clean"
    );
    eprintln!(
        "remote killed mid-build: {} compiles, {warnings} warning lines, verify clean\n  {}",
        compiles(&out.stderr),
        summary(&out)
    );
}

/// A remote that answers every request with HTTP 500 (a scripted server: nginx cannot be
/// made to fail on demand without a second configuration): the build succeeds locally,
/// the breaker switches the remote off with one warning, and nothing is written locally
/// from it.
#[test]
fn http_500s_build_locally() {
    if !have_go("http_500s_build_locally") {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut buf = [0u8; 64 << 10];
                // One response per read that holds a request head; bodies are read and ignored.
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let r = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                        let _ = conn.write_all(r);
                        break;
                    }
                }
            });
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    write_tiny_module(&module, "fivehundred");
    let failing = Backend {
        name: "http-500",
        url: format!("http://127.0.0.1:{port}/cache"),
        env: vec![],
    };
    let dir = tmp.path().join("c");
    let t0 = std::time::Instant::now();
    let out = build(&mut go_remote(
        &module,
        &dir,
        &failing,
        "main",
        &[("SGCACHE_UPLOAD_DEADLINE", "5s")],
    ));
    assert!(compiles(&out.stderr) >= 3, "{}", summary(&out));
    assert!(
        served.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the failing server was never asked"
    );
    let warnings = warning_lines(&out);
    assert!(
        (1..=2).contains(&warnings),
        "want one or two warning lines: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        t0.elapsed().as_secs() < 60,
        "HTTP 500s slowed the build to {:?}",
        t0.elapsed()
    );
    assert_eq!(
        crate::common::sgcache_verify(&dir).0,
        0,
        "local tier not clean"
    );
    eprintln!(
        "HTTP 500s: {} compiles, {warnings} warning lines, {} requests answered 500, verify clean",
        compiles(&out.stderr),
        served.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// sgcache's warning lines in a go command's stderr.
fn warning_lines(out: &Output) -> usize {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("WARN"))
        .count()
}

/// `path` of an executable on PATH.
fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    let path = var("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// Manifest prefetch: the second fresh machine fetches what the first one used in the
/// background, from the manifest, before the go command asks; with it off, it does not.
#[test]
fn manifest_prefetch_fetches_ahead() {
    if !have_go("manifest_prefetch_fetches_ahead") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let b = &backends(&tmp.path().join("remote"))[0];
    let module = tmp.path().join("m");
    write_tiny_module(&module, "prefetch");
    let key = [("SGCACHE_MANIFEST_KEY", "ci-linux-amd64")];
    build(&mut go_remote(
        &module,
        &tmp.path().join("a"),
        b,
        "main",
        &key,
    ));
    let manifests = walk(&tmp.path().join("remote"))
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|d| d.starts_with(b"sgm4")))
        .count();
    assert_eq!(manifests, 1, "one manifest stored");

    // Prefetch takes the outputs from packs (a few requests), or one by one.
    let prefetched = |out: &Output| {
        crate::common::summary_counter(out, "prefetch_lookups")
            + crate::common::summary_counter(out, "prefetch_pack_objects")
    };
    let out = build(&mut go_remote(
        &module,
        &tmp.path().join("b"),
        b,
        "main",
        &key,
    ));
    assert_eq!(compiles(&out.stderr), 0, "{}", summary(&out));
    // (Outputs are counted as they commit; `packs_fetched` only once a whole pack has been
    // read, which a build this small may finish before.)
    assert!(
        crate::common::summary_counter(&out, "prefetch_pack_objects") >= 3,
        "prefetch did not use packs: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let off = [
        ("SGCACHE_MANIFEST_KEY", "ci-linux-amd64"),
        ("SGCACHE_PREFETCH", "0"),
    ];
    let out = build(&mut go_remote(
        &module,
        &tmp.path().join("c"),
        b,
        "main",
        &off,
    ));
    assert_eq!(compiles(&out.stderr), 0);
    assert_eq!(
        prefetched(&out),
        0,
        "prefetch ran although SGCACHE_PREFETCH=0"
    );
}
