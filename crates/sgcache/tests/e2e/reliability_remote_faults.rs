//! The remote tier under network faults and latency, end to end: the real go command, the
//! real binary, nginx WebDAV from `.ci/servers.sh` (`SGCACHE_TEST_HTTP_URL`), and the
//! fault-injecting proxy of `tests/e2e/common/proxy.rs` in between.
//!
//! - A connection reset in the middle of downloads costs compiles, never a wrong byte.
//! - A server that goes away in the middle of uploads leaves nothing a reader accepts.
//! - With prefetch, a fresh machine makes far fewer blocking remote round trips.
#![allow(clippy::print_stderr)]

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::proxy::{Fault, Proxy};
use crate::common::{build_x, check_cache, compiles, go_remote, have_go, summary, summary_counter};

/// The nginx WebDAV URL and its data directory, or `None` with a SKIP line.
fn nginx(test: &str) -> Option<(String, Option<std::path::PathBuf>)> {
    #[allow(clippy::disallowed_methods)]
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if !have_go(test) {
        return None;
    }
    let Some(url) = var("SGCACHE_TEST_HTTP_URL") else {
        eprintln!(
            "SKIP {test}: SGCACHE_TEST_HTTP_URL is not set (`. <(bash .ci/servers.sh env)` \
             with the servers running)"
        );
        return None;
    };
    Some((url, var("SGCACHE_TEST_HTTP_DATA").map(Into::into)))
}

/// A namespace (and manifest key) no other run shares, so runs on one server stay apart.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

/// A go test's start: nginx, a temp dir with the module `m` (std deps, a main, a test),
/// and a namespace of its own.
struct Setup {
    url: String,
    data: Option<std::path::PathBuf>,
    tmp: tempfile::TempDir,
    module: std::path::PathBuf,
    ns: String,
}

fn setup(test: &str) -> Option<Setup> {
    let (url, data) = nginx(test)?;
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("m");
    crate::common::write_module(&module);
    Some(Setup {
        url,
        data,
        tmp,
        module,
        ns: unique(test),
    })
}

/// A local directory as the go command reads it: nothing corrupt, no temp files, and
/// `sgcache verify` clean. Returns the number of outputs.
fn assert_sound(who: &str, dir: &Path) -> usize {
    let c = check_cache(dir);
    assert!(
        c.corrupt.is_empty(),
        "{who}: corrupt entries: {:?}",
        c.corrupt
    );
    assert_eq!(c.temps, 0, "{who}: temp files left in {}", dir.display());
    let (problems, report) = crate::common::sgcache_verify(dir);
    assert_eq!(problems, 0, "{who}: verify: {report}");
    c.outputs
}

/// The proxy itself, with raw HTTP against nginx: it counts request heads on a keep-alive
/// connection, a response reset after `n` body bytes never arrives whole, and nginx keeps
/// nothing of an upload reset half way.
#[test]
fn proxy_counts_requests_and_resets_mid_body() {
    use std::io::{Read, Write};
    let Some((url, _)) = nginx("proxy_counts_requests_and_resets_mid_body") else {
        return;
    };
    let (proxy, purl) = Proxy::for_http_url(&url);
    let path = purl.split_once("//").unwrap().1.split_once('/').unwrap().1;
    let key = unique("proxytest");
    let body = vec![b'x'; 200 << 10];
    let exchange = |req: &[u8]| -> std::io::Result<Vec<u8>> {
        let mut s = std::net::TcpStream::connect(proxy.addr)?;
        s.write_all(req)?;
        let mut got = Vec::new();
        s.read_to_end(&mut got).map(|_| got)
    };
    let put = |name: &str| {
        let mut r = format!(
            "PUT /{path}/{name} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(&body);
        r
    };
    let get = |name: &str, close: bool| {
        let c = if close { "Connection: close\r\n" } else { "" };
        format!("GET /{path}/{name} HTTP/1.1\r\nHost: x\r\n{c}\r\n").into_bytes()
    };
    let resp = exchange(&put(&key)).unwrap();
    assert!(
        resp.starts_with(b"HTTP/1.1 201"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    // Two GETs on one connection: both answered whole, two requests counted.
    let before = proxy.requests();
    let mut two = get(&key, false);
    two.extend(get(&key, true));
    let resp = exchange(&two).unwrap();
    assert!(
        resp.len() > 2 * body.len(),
        "two bodies: {} bytes",
        resp.len()
    );
    assert_eq!(proxy.requests() - before, 2, "{}", proxy.describe());

    proxy.set_fault(Fault::ResetResponseAfter(4096));
    let cut = exchange(&get(&key, true));
    match &cut {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(b) => assert!(b.len() < body.len(), "a whole body passed a reset"),
    }
    assert_eq!(proxy.resets(), 1);

    proxy.set_fault(Fault::ResetUploadAfter(64 << 10));
    let half = unique("proxytest-half");
    let r = exchange(&put(&half));
    assert!(
        r.as_ref().map_or(true, |b| !b.starts_with(b"HTTP/1.1 2")),
        "upload reset yet stored: {r:?}"
    );
    proxy.set_fault(Fault::None);
    let resp = exchange(&get(&half, true)).unwrap();
    assert!(
        resp.starts_with(b"HTTP/1.1 404"),
        "nginx kept a partial upload: {}",
        String::from_utf8_lossy(&resp[..resp.len().min(200)])
    );
    assert_eq!(
        proxy
            .counts()
            .unframed
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    eprintln!("proxy: {}", proxy.describe());
}

/// Machine A fills the remote; machine B (fresh) builds through a proxy that resets every
/// response after 32 KiB of body, so every larger object is cut mid-download. B's build
/// succeeds (it compiles what it could not fetch), its tier holds nothing truncated, no
/// temp file, verifies clean; without faults B's next build and a fresh machine's are
/// all hits.
#[test]
fn connection_reset_mid_download_loses_nothing() {
    let Some(Setup {
        url,
        tmp,
        module,
        ns,
        ..
    }) = setup("connection_reset_mid_download_loses_nothing")
    else {
        return;
    };
    let a = build_x(&mut go_remote(&module, &tmp.path().join("a"), &url, &ns));
    let a_compiles = compiles(&a.stderr);

    let (proxy, purl) = Proxy::for_http_url(&url);
    const CUT: u64 = 32 << 10;
    proxy.set_fault(Fault::ResetResponseAfter(CUT));
    let b_dir = tmp.path().join("b");
    // Breaker off, so every object is tried (and cut) instead of the remote being switched
    // off after five failures.
    let mut cmd = go_remote(&module, &b_dir, &purl, &ns);
    cmd.env("SGCACHE_BREAKER_THRESHOLD", "0");
    let t0 = Instant::now();
    let b = build_x(&mut cmd);
    let b_time = t0.elapsed();
    let b_compiles = compiles(&b.stderr);
    let resets = proxy.resets();
    let outputs = assert_sound("B", &b_dir);
    eprintln!(
        "reset mid-download: A {a_compiles} compiles; B {b_compiles} compiles, {resets} \
         responses reset after {CUT} body bytes, {outputs} outputs, 0 corrupt, 0 temp, \
         verify clean, {b_time:.1?}\n  proxy: {}\n  B {}",
        proxy.describe(),
        summary(&b)
    );
    assert!(resets >= 3, "few objects were cut: {}", proxy.describe());
    assert!(
        b_compiles >= 1,
        "B compiled nothing although objects were cut"
    );
    assert!(
        summary_counter(&b, "remote_hits") > 0,
        "B got no remote hit at all: {}",
        summary(&b)
    );

    // Faults off: B's next build is all hits, and the remote still serves a fresh machine.
    proxy.set_fault(Fault::None);
    let again = build_x(&mut go_remote(&module, &b_dir, &purl, &ns));
    assert_eq!(compiles(&again.stderr), 0, "B again: {}", summary(&again));
    assert_sound("B again", &b_dir);
    let d_dir = tmp.path().join("d");
    let d = build_x(&mut go_remote(&module, &d_dir, &purl, &ns));
    assert_eq!(compiles(&d.stderr), 0, "fresh D: {}", summary(&d));
    assert_sound("D", &d_dir);
    eprintln!("  then without faults: B again 0 compiles, fresh D 0 compiles, both verify clean");
}

/// Plain-layout key of `action` in namespace `ns` (docs/remote.md, "Key layout").
fn plain_ac_key(ns: &str, action: &[u8]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"sgcache-ns-v1\0");
    h.update(ns.as_bytes());
    h.update(b"\0");
    h.update(action);
    hex::encode(h.finalize())
}

/// What nginx holds for the actions machine A put: entries present, and the entries among
/// them whose object is missing, of the wrong size, or does not hash to its name.
fn remote_entries(data: &Path, ns: &str, actions: &[String]) -> (usize, Vec<String>) {
    let (mut present, mut bad) = (0, Vec::new());
    for a in actions {
        let key = plain_ac_key(ns, &hex::decode(a).unwrap());
        let Ok(line) = std::fs::read_to_string(data.join("ac").join(&key)) else {
            continue;
        };
        present += 1;
        let f: Vec<&str> = line.trim_end().split(' ').collect();
        let (Some(&"sgc2"), Some(out), Some(size)) = (f.first(), f.get(1), f.get(2)) else {
            bad.push(format!("ac/{key}: malformed {line:?}"));
            continue;
        };
        let obj = data.join("cas").join(out);
        match std::fs::metadata(&obj) {
            Ok(m) if m.len().to_string() == *size => {
                if crate::common::file_sha256_hex(&obj).ok().as_deref() != Some(*out) {
                    bad.push(format!("cas/{out} does not hash to its name"));
                }
            }
            Ok(m) => bad.push(format!("cas/{out}: {} bytes, entry says {size}", m.len())),
            Err(_) => bad.push(format!("ac/{key} names cas/{out}, which is missing")),
        }
    }
    (present, bad)
}

/// Machine A builds through a proxy that resets every upload after 32 KiB of body: the go
/// command succeeds, nginx holds no entry whose object is partial or missing, and machine
/// C (fresh, no faults) builds, compiling what never arrived, with a clean tier.
#[test]
fn server_gone_mid_upload_leaves_nothing_a_reader_accepts() {
    let Some(Setup {
        url,
        data,
        tmp,
        module,
        ns,
    }) = setup("server_gone_mid_upload_leaves_nothing_a_reader_accepts")
    else {
        return;
    };
    let (proxy, purl) = Proxy::for_http_url(&url);
    const CUT: u64 = 32 << 10;
    proxy.set_fault(Fault::ResetUploadAfter(CUT));
    let a_dir = tmp.path().join("a");
    let mut cmd = go_remote(&module, &a_dir, &purl, &ns);
    cmd.env("SGCACHE_BREAKER_THRESHOLD", "0");
    let a = build_x(&mut cmd);
    let resets = proxy.resets();
    assert_sound("A", &a_dir);
    assert!(resets >= 3, "few uploads were cut: {}", proxy.describe());
    let actions: Vec<String> = check_cache(&a_dir).actions.into_keys().collect();

    let mut remote_note = String::from("(no SGCACHE_TEST_HTTP_DATA: remote files not read)");
    if let Some(data) = &data {
        let (present, bad) = remote_entries(data, &ns, &actions);
        assert!(bad.is_empty(), "the remote holds bad entries: {bad:#?}");
        assert!(
            present > 0,
            "no entry reached the remote: {}",
            proxy.describe()
        );
        assert!(
            present < actions.len(),
            "every entry reached the remote although {resets} uploads were cut"
        );
        remote_note = format!(
            "remote: {present} of {} entries stored, each with its whole object",
            actions.len()
        );
    }

    // Prefetch off: A's manifest names every action it used, and other tests' uploads of
    // this same module put the missing objects into the (namespace-free) `cas/`, so a
    // prefetching C could legitimately rebuild the lost entries from the manifest. Here C
    // must see only what the action entries say.
    let c_dir = tmp.path().join("c");
    let mut cmd = go_remote(&module, &c_dir, &url, &ns);
    cmd.env("SGCACHE_PREFETCH", "0");
    let c = build_x(&mut cmd);
    let outputs = assert_sound("C", &c_dir);
    eprintln!(
        "cut mid-upload: A {} compiles, {resets} uploads reset after {CUT} body bytes; \
         {remote_note}; C {} compiles, {outputs} outputs, 0 corrupt, verify clean\n  \
         proxy: {}\n  A {}\n  C {}",
        compiles(&a.stderr),
        compiles(&c.stderr),
        proxy.describe(),
        summary(&a),
        summary(&c)
    );
    assert!(
        summary_counter(&c, "remote_hits") > 0,
        "C got no remote hit"
    );
    assert!(
        compiles(&c.stderr) > 0,
        "C compiled nothing although uploads were cut"
    );
}

/// What one fresh machine's build cost.
struct Run {
    compiles: usize,
    waits: u64,
    wait_ms: u64,
    requests: u64,
    wall: Duration,
}

fn fresh_build(
    proxy: &Proxy,
    module: &Path,
    dir: &Path,
    url: &str,
    ns: &str,
    env: &[(&str, &str)],
) -> (Run, Output) {
    let mut cmd = go_remote(module, dir, url, ns);
    cmd.envs(env.iter().copied());
    let before = proxy.requests();
    let t0 = Instant::now();
    let out = build_x(&mut cmd);
    let run = Run {
        compiles: compiles(&out.stderr),
        waits: summary_counter(&out, "remote_waits"),
        wait_ms: summary_counter(&out, "remote_wait_ms"),
        requests: proxy.requests() - before,
        wall: t0.elapsed(),
    };
    (run, out)
}

/// Issue "Hide remote latency": behind 20 ms of added latency per request, a fresh machine
/// with prefetch (B) and one without (C) both build with zero compiles, and B's gets wait
/// on the remote far less often. A *blocking round trip* is a get whose reply waited on
/// the remote (a local miss looked up remotely, including one that joined a prefetch
/// lookup still in flight): the summary counter `get_remote_waits`. A fourth machine (D)
/// prefetches without packs, one request per output: B, with packs, needs far fewer.
#[test]
fn prefetch_cuts_blocking_round_trips_behind_latency() {
    let Some(Setup {
        url,
        tmp,
        module,
        ns,
        ..
    }) = setup("prefetch_cuts_blocking_round_trips_behind_latency")
    else {
        return;
    };
    let key = unique("manifest");
    let (proxy, purl) = Proxy::for_http_url(&url);
    const LATENCY: Duration = Duration::from_millis(20);
    proxy.set_latency(LATENCY);
    let manifest = [("SGCACHE_MANIFEST_KEY", key.as_str())];

    let (a, _) = fresh_build(
        &proxy,
        &module,
        &tmp.path().join("a"),
        &purl,
        &ns,
        &manifest,
    );
    assert!(a.compiles > 0);
    let (b, bout) = fresh_build(
        &proxy,
        &module,
        &tmp.path().join("b"),
        &purl,
        &ns,
        &manifest,
    );
    let off = [manifest[0], ("SGCACHE_PREFETCH", "0")];
    let (c, cout) = fresh_build(&proxy, &module, &tmp.path().join("c"), &purl, &ns, &off);
    let one_by_one = [manifest[0], ("SGCACHE_PACKS", "0")];
    let (d, dout) = fresh_build(
        &proxy,
        &module,
        &tmp.path().join("d"),
        &purl,
        &ns,
        &one_by_one,
    );
    for (name, r) in [
        ("A (cold)", &a),
        ("B prefetch", &b),
        ("C no prefetch", &c),
        ("D prefetch without packs", &d),
    ] {
        eprintln!(
            "{name}: {} compiles, {} blocking round trips (gets that waited; {} ms waited in \
             all), {} HTTP requests, wall {:.2?}",
            r.compiles, r.waits, r.wait_ms, r.requests, r.wall
        );
    }
    assert_eq!(b.compiles, 0, "B compiled: {}", summary(&bout));
    assert_eq!(c.compiles, 0, "C compiled: {}", summary(&cout));
    assert!(
        summary_counter(&bout, "prefetch_found") + summary_counter(&bout, "prefetch_pack_objects")
            > 0,
        "prefetch found nothing: {}",
        summary(&bout)
    );
    assert!(
        c.waits >= 20,
        "C waited only {} times: {}",
        c.waits,
        summary(&cout)
    );
    // Measured: 41–48 against 194 (about 1/4), 0.55–0.65 s waited against 7.3 s. The
    // bounds leave room for a loaded machine: the go command's first gets race the first
    // prefetch wave.
    assert!(
        b.waits * 3 <= c.waits && b.wait_ms * 4 <= c.wait_ms,
        "prefetch: {} blocking round trips ({} ms), without: {} ({} ms)\nB {}\nC {}",
        b.waits,
        b.wait_ms,
        c.waits,
        c.wait_ms,
        summary(&bout),
        summary(&cout)
    );
    assert!(b.wall < c.wall, "prefetch made B slower than C");
    // Packs: the outputs come in a few requests instead of one each.
    assert_eq!(d.compiles, 0, "D compiled: {}", summary(&dout));
    assert_eq!(summary_counter(&dout, "prefetch_pack_objects"), 0);
    assert!(
        b.requests * 2 <= d.requests,
        "packs: {} HTTP requests, one by one: {}\nB {}\nD {}",
        b.requests,
        d.requests,
        summary(&bout),
        summary(&dout)
    );
}
