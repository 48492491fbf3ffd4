//! A remote that is down, slow or broken costs a go command almost nothing, and heals
//! (issue: "a remote that is down costs a go command almost nothing"). Faults come from
//! servers and proxies the test starts; the go command is real. Bounds here are generous
//! (the figures are in `bench/outage.sh`); they catch the old behaviour of every go command
//! waiting out a dead remote again.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::backends::var;
use crate::common::proxy::{Fault, Proxy};
use crate::common::{build_x, compiles, go, go_remote, metrics, summary, write_tiny_module};

/// A loopback listener that accepts connections and never answers (a dead proxy, a VPN that
/// drops packets); with `after`, it answers 200 with an empty body after that long.
fn silent_server(after: Option<Duration>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                match after {
                    Some(d) => {
                        std::thread::sleep(d);
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                    }
                    None => std::thread::sleep(Duration::from_secs(3600)),
                }
            });
        }
    });
    port
}

/// An HTTP server answering 500 to everything.
fn server_500() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    let r = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops";
                    if s.write_all(r).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn timed(mut c: Command) -> (Duration, Output) {
    let t = Instant::now();
    c.args(["build", "-x", "./..."]);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "the build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (t.elapsed(), out)
}

/// Three warm in-process builds and one cold one through the faulty remote `url`: each warm
/// build after the first costs almost nothing more than the plain go command, the first one
/// at most a few seconds, the cold one no more than a few seconds over the plain one.
fn assert_cheap(name: &str, url: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    write_tiny_module(&module, name);
    let cache = tmp.path().join("cache");
    // Warm the local tier (no remote), and time the plain go command on it.
    build_x(&mut go(&module, &cache, true));
    let (plain, _) = timed(go(&module, &cache, false));
    let mut warm = Vec::new();
    for i in 0..3 {
        let (t, out) = timed(go_remote(&module, &cache, url, "main"));
        assert_eq!(compiles(&out.stderr), 0, "{name}: warm build {i}");
        warm.push((t, summary(&out)));
    }
    let cold_cache = tmp.path().join("cold");
    let (cold_plain, _) = timed(go(&module, &tmp.path().join("plain-cold"), false));
    let (cold, cold_out) = timed(go_remote(&module, &cold_cache, url, "main"));
    assert!(compiles(&cold_out.stderr) >= 3);
    eprintln!(
        "outage[{name}]: plain warm {plain:?}; warm through the remote {:?}; cold {cold:?} vs plain {cold_plain:?}",
        warm.iter().map(|(t, _)| *t).collect::<Vec<_>>()
    );
    assert!(
        warm[0].0 < plain + Duration::from_secs(4),
        "{name}: first warm build {:?} vs plain {plain:?}: {}",
        warm[0].0,
        warm[0].1
    );
    for (t, line) in &warm[1..] {
        assert!(
            *t < plain + Duration::from_millis(1500),
            "{name}: a later warm build {t:?} vs plain {plain:?}: {line}"
        );
    }
    assert!(
        cold < cold_plain + Duration::from_secs(6),
        "{name}: cold {cold:?} vs plain {cold_plain:?}: {}",
        summary(&cold_out)
    );
    // The later builds did not even ask: the first one recorded the outage.
    for (i, (_, line)) in warm.iter().enumerate().skip(1) {
        assert!(
            !line.contains("\"remote_errors\":") || line.contains("\"remote_errors\":0"),
            "{name}: warm build {i} asked the remote: {line}"
        );
    }
}

#[test]
fn a_silent_remote_costs_the_first_go_command_a_second_and_the_next_nothing() {
    if !crate::common::have_go("a_silent_remote…") {
        return;
    }
    let port = silent_server(None);
    assert_cheap("silent", &format!("http://127.0.0.1:{port}/cache"));
}

#[test]
fn a_refused_port_a_500_server_and_a_30s_server_cost_nothing_either() {
    if !crate::common::have_go("a_refused_port…") {
        return;
    }
    assert_cheap(
        "refused",
        &format!("http://127.0.0.1:{}/cache", closed_port()),
    );
    assert_cheap("500", &format!("http://127.0.0.1:{}/cache", server_500()));
    let slow = silent_server(Some(Duration::from_secs(30)));
    assert_cheap("30s", &format!("http://127.0.0.1:{slow}/cache"));
}

#[test]
fn a_proxy_cutting_every_body_costs_little_and_loses_nothing() {
    if !crate::common::have_go("a_proxy_cutting_every_body…") {
        return;
    }
    let Some(url) = var("SGCACHE_TEST_HTTP_URL") else {
        eprintln!("SKIP a_proxy_cutting_every_body…: SGCACHE_TEST_HTTP_URL is not set (nginx)");
        return;
    };
    let (proxy, cut_url) = Proxy::for_http_url(&url);
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    write_tiny_module(&module, &format!("cut-{}", std::process::id()));
    // A seeds the remote directly (not through the proxy).
    build_x(&mut go_remote(&module, &tmp.path().join("a"), &url, "main"));
    proxy.set_fault(Fault::ResetResponseAfter(16));
    let (t, out) = timed(go_remote(&module, &tmp.path().join("b"), &cut_url, "main"));
    assert!(compiles(&out.stderr) >= 1, "{}", summary(&out));
    assert!(t < Duration::from_secs(20), "{t:?}: {}", summary(&out));
    let m = metrics(&out);
    assert!(
        m.breaker_trips >= 1,
        "cut downloads count toward the breaker: {m:?}"
    );
    let check = crate::common::check_cache(&tmp.path().join("b"));
    assert!(check.corrupt.is_empty(), "{:?}", check.corrupt);
}

/// A corrupted object: every reader rejects it; the first writer that rebuilds it overwrites
/// it; the next machine builds from the remote with no compile.
#[test]
fn a_corrupted_object_is_healed_by_the_next_writer() {
    if !crate::common::have_go("a_corrupted_object_is_healed…") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote");
    let url = format!("file://{}", remote.display());
    let module = tmp.path().join("m");
    write_tiny_module(&module, "heal");
    let env = |c: &mut Command| {
        // Objects alone (packs hold copies; the tier's tests heal those). A generous
        // first-byte limit: a lookup of B's that timed out on a loaded machine would leave
        // its object unread, so not known corrupt, so not healed, and C would compile.
        c.env("SGCACHE_PACKS", "0")
            .env("SGCACHE_COMPRESSION", "off")
            .env("SGCACHE_REMOTE_TIMEOUT", "30s");
    };
    let mut a = go_remote(&module, &tmp.path().join("a"), &url, "main");
    env(&mut a);
    build_x(&mut a);
    // Flip the last byte of every object, keeping its length and framing.
    let mut flipped = 0;
    for e in std::fs::read_dir(remote.join("cas")).unwrap().flatten() {
        let mut bytes = std::fs::read(e.path()).unwrap();
        if bytes.len() > 4 {
            *bytes.last_mut().unwrap() ^= 0xff;
            std::fs::write(e.path(), bytes).unwrap();
            flipped += 1;
        }
    }
    assert!(flipped >= 3);
    let mut b = go_remote(&module, &tmp.path().join("b"), &url, "main");
    env(&mut b);
    let bout = build_x(&mut b);
    let mb = metrics(&bout);
    assert!(compiles(&bout.stderr) >= 3, "{}", summary(&bout));
    assert!(mb.remote_corrupt_objects >= 3, "{mb:?}");
    assert!(
        mb.uploads_healed >= 3,
        "B overwrote what it found corrupt: {mb:?}"
    );
    let mut c = go_remote(&module, &tmp.path().join("c"), &url, "main");
    env(&mut c);
    let cout = build_x(&mut c);
    assert_eq!(
        compiles(&cout.stderr),
        0,
        "C: {}\nB: {mb:?}",
        summary(&cout)
    );
    let mc = metrics(&cout);
    assert_eq!(mc.remote_corrupt_objects, 0, "C: {mc:?}\nB: {mb:?}");
}

/// Keys no build stores (the go command asks for them and misses, every build): with a
/// remote 20 ms away, warm builds after the first make no request at all.
#[test]
fn warm_builds_make_no_remote_request() {
    if !crate::common::have_go("warm_builds_make_no_remote_request") {
        return;
    }
    let Some(url) = var("SGCACHE_TEST_HTTP_URL") else {
        eprintln!(
            "SKIP warm_builds_make_no_remote_request: SGCACHE_TEST_HTTP_URL is not set (nginx)"
        );
        return;
    };
    let (proxy, slow_url) = Proxy::for_http_url(&url);
    proxy.set_latency(Duration::from_millis(20));
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    // A main package: linking asks for entries no build stores.
    crate::common::write_module(&module);
    let cache = tmp.path().join("cache");
    let ns = format!("warm-{}", std::process::id());
    build_x(&mut go_remote(&module, &cache, &slow_url, &ns));
    assert!(proxy.requests() > 0);
    // The first warm build still puts a few entries of its own (the go command's build of a
    // main package settles over two runs) and uploads them; from the second one on, nothing
    // is new: the keys no build stores are in the negative cache, the entries the go command
    // puts again unchanged were uploaded within the hour, and the manifest is this machine's
    // recent copy.
    let first = build_x(&mut go_remote(&module, &cache, &slow_url, &ns));
    assert_eq!(compiles(&first.stderr), 0);
    for i in 2..5 {
        let before = proxy.requests();
        let out = build_x(&mut go_remote(&module, &cache, &slow_url, &ns));
        assert_eq!(compiles(&out.stderr), 0);
        let m = metrics(&out);
        assert!(
            m.remote_negative_hits + m.uploads_skipped_recent > 0 || m.misses == 0,
            "warm build {i}: {m:?}"
        );
        assert_eq!(
            proxy.requests() - before,
            0,
            "warm build {i} asked the remote: {} ({})",
            summary(&out),
            proxy.describe()
        );
    }
}
